//! End-to-end tests: one real cluster (2 shards × primary + synchronous standby) for the
//! whole binary, a fresh database and a real gateway per test, real HTTP.
//!
//! A custom harness (libtest-mimic) so the cluster is started once and stopped by PID at
//! the end, whatever the tests did.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use tests::TestCluster;

mod access;
mod audit;
mod capability;
mod cli;
mod clients;
mod errors;
mod golden;
mod hostile;
mod house;
mod lossless;
mod plans;
mod quantity;
mod rest;
mod search;
mod terminology;
mod terminology_ops;
mod tokens;
mod topology;
mod transaction;
mod xml;

/// What every test gets.
pub struct Env {
    /// The shared cluster.
    pub cluster: TestCluster,
    /// The runtime tests run on.
    pub rt: tokio::runtime::Runtime,
}

/// An async test.
pub type TestFn = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// Declares async tests: `tests![name, …]` expands to `(name, fn)` pairs.
#[macro_export]
macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        pub fn all() -> Vec<(&'static str, $crate::TestFn)> {
            vec![$((concat!(module_path!(), "::", stringify!($name)), |env| Box::pin($name(env)))),*]
        }
    };
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<(&'static str, TestFn)> = Vec::new();
    for group in [
        rest::all(),
        access::all(),
        capability::all(),
        search::all(),
        errors::all(),
        hostile::all(),
        audit::all(),
        topology::all(),
        lossless::all(),
        plans::all(),
        quantity::all(),
        cli::all(),
        clients::all(),
        terminology::all(),
        terminology_ops::all(),
        transaction::all(),
        tokens::all(),
        xml::all(),
    ] {
        trials.extend(group);
    }
    // Tests that need no cluster run first and alone if filtered that way.
    let mut plain: Vec<Trial> = house::all();
    plain.extend(golden::all());
    let needs_cluster = trials
        .iter()
        .any(|(name, _)| args.filter.as_deref().is_none_or(|f| name.contains(f)) && !args.list);
    let env: Option<Arc<Env>> = if needs_cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let cluster = TestCluster::start(2).expect("the test cluster starts");
        Some(Arc::new(Env { cluster, rt }))
    } else {
        None
    };
    let mut all: Vec<Trial> = plain;
    for (name, f) in trials {
        let env = env.clone();
        all.push(Trial::test(name.trim_start_matches("e2e::"), move || {
            let Some(env) = env.as_deref() else {
                return Err(Failed::from("no cluster"));
            };
            env.rt
                .block_on(f(env))
                .map_err(|e| Failed::from(format!("{e:#}")))
        }));
    }
    let conclusion = libtest_mimic::run(&args, all);
    if let Some(env) = env {
        match Arc::try_unwrap(env) {
            Ok(env) => {
                let Env { cluster, rt } = env;
                rt.shutdown_timeout(std::time::Duration::from_secs(10));
                if let Err(e) = cluster.stop() {
                    eprintln!("stopping the test cluster failed: {e:#}");
                }
            }
            Err(_) => eprintln!("a test still holds the cluster; it stops when the process exits"),
        }
    }
    conclusion.exit();
}
