//! Every homeostat CRD, generated from the Rust types.
//!
//! - `crdgen` prints them as one multi-document YAML stream, for
//!   `crdgen | kubectl apply -f -`;
//! - `crdgen --out-dir DIR` writes one file each (what `crds/` holds);
//! - `crdgen --out-dir DIR --check` writes nothing and fails when a file
//!   in DIR differs from the types.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: crdgen [--out-dir DIR [--check]]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => print_all(),
        [flag, dir] if flag == "--out-dir" => write_all(Path::new(dir), false),
        [flag, dir, check] if flag == "--out-dir" && check == "--check" => {
            write_all(Path::new(dir), true)
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crdgen: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Each CRD's file name and YAML.
fn rendered() -> Result<Vec<(String, String)>, String> {
    homeostat_api::all_crds()
        .iter()
        .map(|crd| {
            let name = homeostat_api::crd_file_name(crd);
            homeostat_api::render_crd_yaml(crd)
                .map(|yaml| (name.clone(), yaml))
                .map_err(|e| format!("cannot render {name}: {e}"))
        })
        .collect()
}

fn print_all() -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    for (_, yaml) in rendered()? {
        writeln!(out, "---\n{yaml}").map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

fn write_all(dir: &Path, check: bool) -> Result<(), String> {
    if !check {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let mut drifted: Vec<PathBuf> = Vec::new();
    for (name, yaml) in rendered()? {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|current| current == yaml) {
            continue;
        }
        if check {
            drifted.push(path);
        } else {
            std::fs::write(&path, yaml).map_err(|e| format!("write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if drifted.is_empty() {
        Ok(())
    } else {
        let names: Vec<String> = drifted.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "out of date (run `cargo xtask crds`): {}",
            names.join(", ")
        ))
    }
}
