//! `cleanroom demo`: the whole story on a fresh zone, for a first look and for the README's main command.
//! Today: an agency's view — init, publish the three Suzhou fixtures under their policies, list, show.
//! Grants, applications and jobs join it as they land.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use datasets_fixtures::{DATASETS, FixtureSpec};
use zone_store::{PublishRequest, Zone};

use crate::args::{DemoArgs, ShowArgs};
use crate::commands;
use crate::output::Mode;
use crate::progress::Bars;

pub fn run(zone_dir: Option<&Path>, args: &DemoArgs, mode: Mode) -> anyhow::Result<()> {
    // A temporary zone unless the user asked to keep one.
    let temp = tempfile::Builder::new().prefix("cleanroom-demo-").tempdir().context("creating a temporary folder")?;
    let root: PathBuf = zone_dir.map_or_else(|| temp.path().join("zone"), Path::to_path_buf);
    let data = temp.path().join("agency-files");

    step(mode, &format!("1. zone init in {}", root.display()));
    let mut zone = Zone::init(&root)?;

    step(
        mode,
        &format!("2. the agencies prepare their data: {} synthetic rows per dataset (seed {})", args.rows, args.seed),
    );
    let spec = FixtureSpec::with_rows(args.rows, args.seed);
    datasets_fixtures::generate(&data, &spec, &mut |_, _| {}).context("generating the demo datasets")?;

    step(mode, "3. each agency publishes its dataset under its policy");
    for name in DATASETS {
        let request = PublishRequest {
            files: vec![data.join(format!("{name}.parquet"))],
            policy: data.join(format!("{name}.toml")),
            name: Some(name.to_owned()),
        };
        let outcome = zone.publish(&request, &mut Bars::default())?;
        let v = outcome.version();
        if mode == Mode::Human {
            println!("   published {}@{} ({} rows, provider {})", v.dataset, v.version, v.rows, v.provider);
        }
    }

    step(mode, "4. the catalog");
    commands::list(&root, mode)?;

    step(mode, "5. what an operator may see of enterprise_registry (classes and types, never a value)");
    commands::show(&root, &ShowArgs { dataset: "enterprise_registry".into(), policy: false }, mode)?;

    if zone_dir.is_some() {
        step(mode, &format!("the zone is kept in {}", root.display()));
    }
    Ok(())
}

fn step(mode: Mode, text: &str) {
    // In JSON mode stdout carries only JSON documents; narration goes to stderr.
    match mode {
        Mode::Human => println!("\n== {text}"),
        Mode::Json => eprintln!("== {text}"),
    }
}
