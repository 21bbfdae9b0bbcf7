//! The code has the shape the design gives it: services meet only through contracts.
//! A service crate (one that builds a binary) may depend on contract crates (`core`,
//! `proto`, `client`, `archive`, `schema`, `tables`, ...) but never on another service
//! crate, and no contract crate depends on a service; so each binary links only what it
//! uses. Dev-dependencies (tests, benches) are free to use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Workspace packages: name → (builds a binary, normal dependencies on other members).
fn workspace() -> BTreeMap<String, (bool, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let bin = p["targets"].as_array().unwrap().iter().any(|t| {
                t["kind"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k.as_str() == Some("bin"))
            });
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| members.contains(n))
                .collect();
            (p["name"].as_str().unwrap().to_string(), (bin, deps))
        })
        .collect()
}

#[test]
fn no_crate_depends_on_a_service() {
    let ws = workspace();
    let services: BTreeSet<&String> = ws
        .iter()
        .filter(|(_, (bin, _))| *bin)
        .map(|(name, _)| name)
        .collect();
    for expected in [
        "onepipe-registry",
        "onepipe-http-producer",
        "onepipe-copycat",
        "onepipe-copydog",
        "onepipe-warehouse-loader",
        "onepipe-verifier",
        "onepipe-online-sink",
        "onepipe-cli",
    ] {
        assert!(
            services.contains(&expected.to_string()),
            "{expected} should build a binary"
        );
    }
    let mut wrong = Vec::new();
    for (name, (_, deps)) in &ws {
        // The end-to-end tests drive every service in-process.
        if name == "onepipe-integration-tests" {
            continue;
        }
        for dep in deps {
            if services.contains(dep) {
                wrong.push(format!("{name} -> {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "crates depend on service crates (move the shared code into a contract crate): {wrong:?}"
    );
}

#[test]
fn contracts_are_their_own_crates() {
    let ws = workspace();
    for contract in [
        "onepipe-core",
        "onepipe-proto",
        "onepipe-client",
        "onepipe-archive",
        "onepipe-schema",
        "onepipe-tables",
    ] {
        let (bin, _) = ws
            .get(contract)
            .unwrap_or_else(|| panic!("{contract} is a workspace member"));
        assert!(!bin, "{contract} is a library, not a service");
    }
    // The CLI checks schemas without linking the registry server.
    assert!(ws["onepipe-cli"].1.contains("onepipe-schema"));
}
