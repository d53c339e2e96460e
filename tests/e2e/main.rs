//! End-to-end tests: they drive the real `cleanroom` binary on real files in temporary zones.
//! One test binary for all of them keeps link time down.

mod architecture;
mod artifacts;
mod audit;
mod channels;
mod common;
mod conformance;
mod crash;
mod docs;
mod governance;
mod identity;
mod jobs;
mod mock;
mod module;
mod oversight;
mod privacy;
mod publish;
mod server;
