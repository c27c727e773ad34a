//! Running the `woodpecker` binary from the integration tests.

use std::process::{Command, Output};

/// Runs the binary with `args` and extra environment, `RUST_LOG` unset.
pub fn woodpecker(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_woodpecker"));
    command.args(args).env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("running woodpecker")
}

/// A one-second `bench write` on `store` with a JSON report.
pub fn tiny_write(store: &str) -> Vec<&str> {
    vec![
        "bench",
        "write",
        "--store",
        store,
        "--duration-s",
        "1",
        "--rounds",
        "1",
        "--no-raw",
        "--window",
        "8",
        "--json",
    ]
}
