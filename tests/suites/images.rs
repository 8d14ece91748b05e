//! The container images `cargo xtask images` builds, under a real
//! containerd and runc: each runs its program as the non-root user and holds
//! nothing else; the OMS image serves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homeostat_test_support::containerd::LocalContainerd;
use homeostat_test_support::{free_port, wait_until};
use serde_json::Value;

fn images_dir() -> PathBuf {
    let dir = std::env::var_os("HOMEOSTAT_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "HOMEOSTAT_IMAGES_DIR is not set: build the images first (`cargo xtask images`, \
                 then HOMEOSTAT_IMAGES_DIR=target/images; cargo xtask test does both)"
            )
        });
    assert!(dir.is_dir(), "{} is no directory", dir.display());
    dir
}

/// `tar -xOf archive member`.
fn member(archive: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "{name} in {}", archive.display());
    out.stdout
}

/// One image in a docker archive: its name, its config and the paths in its layers.
struct Archived {
    reference: String,
    config: Value,
    files: Vec<String>,
}

fn read_archive(archive: &Path) -> Archived {
    let manifest: Value =
        serde_json::from_slice(&member(archive, "manifest.json")).expect("manifest.json");
    let entry = &manifest[0];
    let reference = entry["RepoTags"][0].as_str().expect("a tag").to_owned();
    let config: Value =
        serde_json::from_slice(&member(archive, entry["Config"].as_str().expect("config")))
            .expect("config json");
    let mut files = Vec::new();
    for layer in entry["Layers"].as_array().expect("layers") {
        let layer = layer.as_str().expect("layer");
        let mut listing = Command::new("tar")
            .arg("-t")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("tar -t");
        let bytes = member(archive, layer);
        let mut stdin = listing.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&bytes);
        });
        let out = listing.wait_with_output().expect("list a layer");
        writer.join().expect("feed tar");
        files.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim_start_matches("./").to_owned()),
        );
    }
    Archived {
        reference,
        config,
        files,
    }
}

fn ctr_ok(command: &mut Command) -> String {
    let out = command.output().expect("run ctr");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn every_image_runs_its_program_as_nonroot_with_nothing_else_inside() {
    homeostat_test_support::install_crypto_provider();
    let dir = images_dir();
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("images dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    archives.sort();
    let names: Vec<String> = archives
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "homeostat-detector",
            "homeostat-operator",
            "oms-sample",
            "pause",
            "prometheus"
        ]
    );

    let containerd = LocalContainerd::start().unwrap_or_else(|e| panic!("containerd: {e}"));
    let mut oms = None;
    for archive in &archives {
        let image = read_archive(archive);
        let config = &image.config["config"];
        if image.reference.contains("/pause:") {
            // The sandbox program alone, as nobody; it takes no arguments.
            assert_eq!(config["User"], "65535:65535");
            assert_eq!(config["Entrypoint"][0], "/pause");
            assert_eq!(
                image
                    .files
                    .iter()
                    .filter(|f| !f.ends_with('/'))
                    .collect::<Vec<_>>(),
                ["pause"]
            );
            continue;
        }
        assert_eq!(config["User"], "65532:65532", "{}", image.reference);
        let entrypoint = config["Entrypoint"][0]
            .as_str()
            .expect("an entrypoint")
            .to_owned();
        // The program, the C library it links, CA certificates, the users:
        // no shell, no package manager.
        assert!(
            image
                .files
                .iter()
                .any(|f| f == entrypoint.trim_start_matches('/')),
            "{} lacks {entrypoint}",
            image.reference
        );
        for absent in [
            "bin/sh",
            "usr/bin/sh",
            "bin/bash",
            "usr/bin/apt",
            "usr/bin/dpkg",
        ] {
            assert!(
                !image.files.iter().any(|f| f == absent),
                "{} has {absent}",
                image.reference
            );
        }
        assert!(
            image
                .files
                .iter()
                .any(|f| f == "etc/ssl/certs/ca-certificates.crt"),
            "{} trusts no CA",
            image.reference
        );

        ctr_ok(containerd.ctr().args(["images", "import"]).arg(archive));
        let id = image
            .reference
            .rsplit('/')
            .next()
            .expect("name")
            .replace([':', '.'], "-");
        let printed = ctr_ok(containerd.ctr().args([
            "run",
            "--rm",
            &image.reference,
            &id,
            &entrypoint,
            "--version",
        ]));
        assert!(
            printed.contains("version") || printed.contains("0."),
            "{printed}"
        );
        if image.reference.contains("/oms-sample:") {
            oms = Some((image.reference, entrypoint));
        }
    }

    // The OMS image serves, as the user the image names.
    let (reference, entrypoint) = oms.expect("the OMS image");
    let port = free_port().expect("a free port").to_string();
    ctr_ok(containerd.ctr().args([
        "run",
        "--detach",
        "--net-host",
        &reference,
        "oms-tax",
        &entrypoint,
        "tax",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-token",
        "t",
    ]));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    wait_until(
        "the tax container answers",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- containerd ---\n{}", containerd.log_tail()));
    let tasks = ctr_ok(containerd.ctr().args(["tasks", "list"]));
    let pid = tasks
        .lines()
        .find(|l| l.starts_with("oms-tax"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the task's pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "{uid}"
    );
}
