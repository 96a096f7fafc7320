//! The `accord` binary's offline commands. Having an integration test here also makes
//! `cargo test --workspace` build the binary, which the end-to-end CLI test in `tests/`
//! runs against a real database.

#![allow(clippy::expect_used)] // test helper: a failure to spawn is a test failure

use std::process::Command;

fn accord(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .output()
        .expect("run accord")
}

#[test]
fn schema_prints_the_sdl() {
    let out = accord(&["schema"]);
    assert!(out.status.success());
    let sdl = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "interface Node",
        "type Opportunity implements Node",
        "convertLead",
        "moveOpportunityStage",
    ] {
        assert!(sdl.contains(needle), "SDL lacks {needle}");
    }
}

#[test]
fn unknown_roles_and_missing_seed_modes_are_refused() {
    let out = accord(&["user", "add", "--email", "a@example.com", "--role", "boss"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sales-manager"));
    let out = accord(&["seed"]);
    assert!(!out.status.success(), "seed needs --demo or --scale");
}
