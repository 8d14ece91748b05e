//! The container images `cargo xtask images` builds, under a real
//! containerd and runc: each runs its program as the non-root user and holds
//! nothing else; the OMS image serves; the PostgreSQL and NATS images keep
//! the upstream images' interface on a read-only root filesystem.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use homeostat_test_support::containerd::LocalContainerd;
use homeostat_test_support::{free_port, wait_for_ok, wait_until};
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
            "nats",
            "oms-sample",
            "pause",
            "postgres",
            "prometheus"
        ]
    );

    let containerd = LocalContainerd::start().unwrap_or_else(|e| panic!("containerd: {e}"));
    let (mut oms, mut postgres, mut nats) = (None, None, None);
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
        let entrypoint = config["Entrypoint"][0]
            .as_str()
            .expect("an entrypoint")
            .to_owned();
        ctr_ok(containerd.ctr().args(["images", "import"]).arg(archive));
        if image.reference.contains("/postgres:") {
            // Its entrypoint is a script (the upstream interface), so it
            // has a shell; it runs as Debian's and upstream's postgres user.
            assert_eq!(config["User"], "999:999");
            assert!(image.files.iter().any(|f| f == "bin/sh"));
            postgres = Some(image.reference);
            continue;
        }
        assert_eq!(config["User"], "65532:65532", "{}", image.reference);
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
            printed.contains("version") || printed.contains("0.") || printed.contains(": v2."),
            "{printed}"
        );
        if image.reference.contains("/oms-sample:") {
            oms = Some((image.reference, entrypoint));
        } else if image.reference.contains("/nats:") {
            nats = Some(image.reference);
        }
    }
    serves_as_the_database(&containerd, &postgres.expect("the PostgreSQL image")).await;
    serves_as_the_broker(&containerd, &nats.expect("the NATS image")).await;

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
    wait_for_ok(
        "the tax container answers",
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(30),
        Duration::from_millis(100),
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

/// A directory the image's user `uid` may write, bind-mounted at `target`.
fn writable_mount(dir: &Path, uid: u32, target: &str) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).expect("chown");
    format!(
        "type=bind,src={},dst={target},options=rbind:rw",
        dir.display()
    )
}

/// The PostgreSQL image as the operator runs it (the upstream image's
/// variables, a read-only root filesystem, data and socket on volumes):
/// it makes the database for the user and takes the password over TCP.
async fn serves_as_the_database(containerd: &LocalContainerd, reference: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("a free port").to_string();
    ctr_ok(containerd.ctr().args([
        "run",
        "--detach",
        "--net-host",
        "--read-only",
        "--env",
        "POSTGRES_USER=oms",
        "--env",
        "POSTGRES_DB=oms",
        "--env",
        "POSTGRES_PASSWORD=s3cret",
        "--env",
        "PGDATA=/var/lib/postgresql/data/pgdata",
        "--mount",
        &writable_mount(&dir.path().join("data"), 999, "/var/lib/postgresql/data"),
        "--mount",
        &writable_mount(&dir.path().join("run"), 999, "/var/run/postgresql"),
        reference,
        "postgres",
        "/usr/local/bin/docker-entrypoint.sh",
        "-c",
        &format!("port={port}"),
        "-c",
        "max_connections=300",
    ]));
    let psql = |password: &str, sql: &str| {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "oms",
                "-d",
                "oms",
                "-tAc",
                sql,
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "2")
            .output()
            .expect("run psql")
    };
    let answer = wait_until(
        "the database answers",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let out = psql("s3cret", "show max_connections");
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- containerd ---\n{}", containerd.log_tail()));
    assert_eq!(answer, "300", "the arguments reach postgres");
    let refused = psql("wrong", "select 1");
    assert!(!refused.status.success(), "a wrong password is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        dir.path().join("data/pgdata/PG_VERSION").is_file(),
        "the data is on the volume"
    );
}

/// The NATS image as the operator runs it: JetStream on, its store on a
/// volume, monitoring answering.
async fn serves_as_the_broker(containerd: &LocalContainerd, reference: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("a free port").to_string();
    let monitor = free_port().expect("a free port").to_string();
    ctr_ok(containerd.ctr().args([
        "run",
        "--detach",
        "--net-host",
        "--read-only",
        "--mount",
        &writable_mount(&dir.path().join("data"), 65532, "/data"),
        reference,
        "nats",
        "/nats-server",
        "--port",
        &port,
        "--jetstream",
        "--store_dir",
        "/data",
        "--http_port",
        &monitor,
    ]));
    wait_for_ok(
        "JetStream is enabled",
        &format!("http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"),
        Duration::from_secs(30),
        Duration::from_millis(100),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n--- containerd ---\n{}", containerd.log_tail()));
    assert!(
        dir.path().join("data/jetstream").is_dir(),
        "the store is on the volume"
    );
}
