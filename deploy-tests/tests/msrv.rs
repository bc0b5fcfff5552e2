//! The declared minimum Rust version is true: every crate inherits the workspace's
//! `rust-version`, and it is at least what every locked dependency declares it needs (clippy's
//! `incompatible_msrv` lint checks our own code against it; this checks the lock).

use std::process::Command;

/// `1.89` and `1.89.0` compare equal.
fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn msrv_covers_every_locked_dependency_and_every_crate_inherits_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata --locked failed (is Cargo.lock up to date?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().expect("packages");
    let ours: Vec<&serde_json::Value> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or("")))
        .collect();
    let msrv = ours
        .iter()
        .find_map(|p| p["rust_version"].as_str())
        .expect("a declared rust-version");
    for p in &ours {
        assert_eq!(
            p["rust_version"].as_str(),
            Some(msrv),
            "{} does not inherit rust-version.workspace",
            p["name"]
        );
    }
    let mut needs: Vec<(Vec<u64>, String)> = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or("")))
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            Some((
                version(v),
                format!("{} {} needs {v}", p["name"], p["version"]),
            ))
        })
        .collect();
    needs.sort();
    let (highest, who) = needs.last().cloned().unwrap_or_default();
    assert!(
        version(msrv) >= highest,
        "rust-version {msrv} is below what the lock needs: {who}"
    );
}
