//! The zone server against the local CLI, in the same run, on the same zone: N concurrent clients (`BENCH_CLIENTS`,
//! 8 by default) each
//! (a) poll a job's status (`BENCH_POLLS` times each): `cleanroom --server … job status` (a process, a TLS 1.3
//!     handshake with client certificates, one request) against `cleanroom --zone … job status` (a process opening the
//!     zone), and the API alone over one kept-alive mutual-TLS connection per client (no process per request);
//! (b) submit and wait for a small job (`BENCH_JOBS` each; `finance-capital` over the 20,000-firm registry):
//!     `cleanroom --server … job run` (queued, run by the server's 2 workers) against `cleanroom --zone … job run`.
//! Requests per second and p50/p99 latency; ratios server / local. Needs the release binary:
//! `cargo build --release -p cleanroom && cargo bench -p cleanroom-benches --bench server`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cleanroom_benches::cli::{Zone, env_usize, run};

/// A zone with a dev CA, the registry, a grant and an approved `finance-capital` application (id 1).
fn zone() -> Zone {
    let z = Zone::registry(true);
    z.submit_approved(example_guests::FINANCE_CAPITAL.path, &[]);
    z
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(z: &Zone) -> Server {
    let mut child = Command::new(&z.bin)
        .args(["--zone", z.root.to_str().expect("utf-8"), "serve", "--listen", "127.0.0.1:0", "--workers", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    let url = line.split_whitespace().find(|w| w.starts_with("https://")).expect("address").to_owned();
    Server { child, url }
}

/// Latencies of `ops` operations spread over `clients` threads, and the wall time.
fn measure(clients: usize, per_client: usize, op: Arc<dyn Fn(usize) + Send + Sync>) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            std::thread::spawn(move || {
                (0..per_client)
                    .map(|i| {
                        let t = Instant::now();
                        op(c * per_client + i);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("client")).collect();
    let wall = start.elapsed();
    all.sort();
    (all, wall)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Line {
    name: &'static str,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn line(name: &'static str, (lat, wall): (Vec<Duration>, Duration)) -> Line {
    let l = Line { name, rps: lat.len() as f64 / wall.as_secs_f64(), p50: pct(&lat, 0.5), p99: pct(&lat, 0.99) };
    println!("  {:<34} {:>9.1} req/s   p50 {:>9.2?}   p99 {:>9.2?}", l.name, l.rps, l.p50, l.p99);
    l
}

fn ratio(a: &Line, b: &Line) {
    println!(
        "  {} / {}: throughput {:.2}×, p50 {:.2}×, p99 {:.2}×",
        a.name,
        b.name,
        a.rps / b.rps,
        a.p50.as_secs_f64() / b.p50.as_secs_f64(),
        a.p99.as_secs_f64() / b.p99.as_secs_f64()
    );
}

fn main() {
    let clients = env_usize("BENCH_CLIENTS", 8);
    let polls = env_usize("BENCH_POLLS", 25);
    let jobs = env_usize("BENCH_JOBS", 2);
    let z = Arc::new(zone());
    // A released job to poll.
    z.local("acme", &["job", "run", "1"]);
    let server = serve(&z);
    let url = server.url.clone();
    let ca = z.root.join("dev-ca");
    let remote_args = Arc::new(vec![
        "--server".to_owned(),
        url.clone(),
        "--cert".to_owned(),
        ca.join("clients/acme.pem").display().to_string(),
        "--key".to_owned(),
        ca.join("clients/acme.key").display().to_string(),
        "--ca".to_owned(),
        ca.join("ca.pem").display().to_string(),
    ]);
    println!("zone server vs local CLI: {clients} concurrent clients, loopback, release binary");

    println!("status polling ({polls} per client):");
    let remote = {
        let (z, a) = (z.clone(), remote_args.clone());
        line(
            "server (CLI process per request)",
            measure(
                clients,
                polls,
                Arc::new(move |_| {
                    let mut args: Vec<&str> = a.iter().map(String::as_str).collect();
                    args.extend(["--json", "job", "status", "1"]);
                    run(&z.bin, &args);
                }),
            ),
        )
    };
    let local = {
        let z = z.clone();
        line(
            "local CLI",
            measure(
                clients,
                polls,
                Arc::new(move |_| {
                    z.local("acme", &["--json", "job", "status", "1"]);
                }),
            ),
        )
    };
    let api = {
        let agents: Arc<Vec<zone_client::Remote>> =
            // One kept-alive mutual-TLS connection per client thread, as a script or another service would use it.
            Arc::new((0..clients).map(|_| zone_client::Remote::with_dev_ca(&url, &z.root, "acme").expect("connect")).collect());
        line(
            "API (kept-alive connection)",
            measure(
                clients,
                polls * 4,
                Arc::new(move |i| {
                    let status: serde_json::Value = agents[i / (polls * 4)].get("/v1/jobs/1").expect("status");
                    assert!(status["id"] == 1, "{status}");
                }),
            ),
        )
    };
    ratio(&remote, &local);
    ratio(&api, &local);

    println!("submit + run a small job to its end ({jobs} per client):");
    let remote_jobs = {
        let (z, a) = (z.clone(), remote_args.clone());
        line(
            "server (queue, 2 workers)",
            measure(
                clients,
                jobs,
                Arc::new(move |_| {
                    let mut args: Vec<&str> = a.iter().map(String::as_str).collect();
                    args.extend(["--json", "job", "run", "1"]);
                    run(&z.bin, &args);
                }),
            ),
        )
    };
    let local_jobs = {
        let z = z.clone();
        line(
            "local CLI (a process per run)",
            measure(
                clients,
                jobs,
                Arc::new(move |_| {
                    z.local("acme", &["--json", "job", "run", "1"]);
                }),
            ),
        )
    };
    ratio(&remote_jobs, &local_jobs);
    drop(server);
}
