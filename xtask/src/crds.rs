//! `cargo xtask crds [--check]`: the CRD YAML in `crds/`, generated from the types.

use anyhow::{Context, bail};

use crate::workspace;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask crds [--check]"),
    };
    let dir = workspace::root().join("crds");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut drifted = Vec::new();
    for crd in homeostat_api::all_crds() {
        let path = dir.join(homeostat_api::crd_file_name(&crd));
        let yaml = homeostat_api::render_crd_yaml(&crd)?;
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == yaml {
            continue;
        }
        if check {
            drifted.push(path.display().to_string());
        } else {
            std::fs::write(&path, yaml).with_context(|| format!("write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !drifted.is_empty() {
        bail!(
            "out of date (run `cargo xtask crds`): {}",
            drifted.join(", ")
        );
    }
    Ok(())
}
