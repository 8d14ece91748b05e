//! `cargo xtask crds [--check]`: the CRD YAML in `crds/`, generated from the
//! types by the API crate's `crdgen` (xtask itself stays free of the
//! Kubernetes crates, so `cargo xtask` builds in seconds).

use anyhow::bail;

use crate::workspace;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask crds [--check]"),
    };
    let dir = workspace::root().join("crds");
    let mut crdgen = workspace::cargo(&[
        "run",
        "--quiet",
        "--locked",
        "-p",
        "homeostat-api",
        "--bin",
        "crdgen",
        "--",
        "--out-dir",
    ]);
    crdgen.arg(&dir);
    if check {
        crdgen.arg("--check");
    }
    workspace::run(&mut crdgen)
}
