//! `cargo xtask images [--import SOCKET] [--namespace NS]`: the container
//! images of homeostat, built without a container engine or a registry.
//! [`servers`] adds PostgreSQL and NATS for an OrderSystem's in-cluster
//! servers on clusters without registry access (the local one).
//!
//! Each image is one layer: a base assembled from the files of Debian's
//! packages as installed here (glibc, libgcc, CA certificates — what the
//! binaries link against and trust, in the distroless style, so the base
//! always matches the glibc the binaries were built against), the program,
//! and a numeric non-root user; nothing else, no shell. Built with Debian's
//! `buildah` (its own storage under `target/images/`) into docker archives
//! there, then imported into containerd when asked. The `Dockerfile` at the
//! root builds the same images with docker, for kind.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::{system, workspace};

mod servers;

/// The user every image runs as: distroless's `nonroot`.
const USER: &str = "65532:65532";
/// Where the images are named; the manifests and the OrderSystem's default
/// image use the same names.
const REGISTRY: &str = "ghcr.io/homeostat-dev";
/// The tag of the images of Debian's servers (PostgreSQL, NATS).
const DEBIAN_TAG: &str = "debian";
/// The Debian packages the base is made of.
const BASE_PACKAGES: [&str; 3] = ["libc6", "libgcc-s1", "ca-certificates"];

/// One image: its name and the program it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Image {
    name: &'static str,
    tag: String,
    /// What it holds, as `org.opencontainers.image.version`.
    version: String,
    /// The program on this machine that becomes the image's entrypoint.
    program: PathBuf,
    /// Where it goes in the image.
    entrypoint: String,
    /// On the Debian base, or alone (a static program).
    on_base: bool,
    user: &'static str,
    /// Directories copied over the base before the program.
    layers: Vec<Layer>,
    /// `NAME=value` in the image's environment.
    env: Vec<String>,
}

/// A directory whose contents are copied to the image's root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    dir: PathBuf,
    /// `uid:gid` owning what it copies; root without it.
    owner: Option<&'static str>,
}

impl Image {
    /// e.g. `ghcr.io/homeostat-dev/oms-sample:0.1.0`
    fn reference(&self) -> String {
        format!("{REGISTRY}/{}:{}", self.name, self.tag)
    }

    /// The docker archive it is written to.
    fn archive(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.tar", self.name))
    }
}

/// The images: the three binaries from `release`, and Prometheus built from
/// its Go module (`cargo xtask test-assets`; Debian's is built without
/// Kubernetes service discovery) at `prometheus_version` (e.g. `2.53.2`).
fn catalogue(release: &Path, prometheus: &Path, prometheus_version: &str) -> Vec<Image> {
    let ours = |name: &'static str, binary: &str| Image {
        name,
        tag: env!("CARGO_PKG_VERSION").to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        program: release.join(binary),
        entrypoint: format!("/usr/local/bin/{binary}"),
        on_base: true,
        user: USER,
        layers: Vec::new(),
        env: Vec::new(),
    };
    vec![
        ours("oms-sample", "oms"),
        ours("homeostat-operator", "homeostat-operator"),
        ours("homeostat-detector", "homeostat-detector"),
        Image {
            name: "prometheus",
            // Upstream's tag: the local overlay changes only the name.
            tag: format!("v{prometheus_version}"),
            version: prometheus_version.to_owned(),
            program: prometheus.to_owned(),
            entrypoint: "/bin/prometheus".to_owned(),
            on_base: true,
            user: USER,
            layers: Vec::new(),
            env: Vec::new(),
        },
    ]
}

/// The sandbox every pod of the local cluster starts with: a static program
/// that waits and reaps, alone in its image (`xtask/images/pause.c`).
fn pause(program: &Path) -> Image {
    Image {
        name: "pause",
        tag: "1.0".to_owned(),
        version: "1.0".to_owned(),
        program: program.to_owned(),
        entrypoint: "/pause".to_owned(),
        on_base: false,
        user: "65535:65535",
        layers: Vec::new(),
        env: Vec::new(),
    }
}

/// What the command line asks.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    /// containerd's socket to import the images into.
    import: Option<PathBuf>,
    /// containerd's namespace; Kubernetes' by default.
    namespace: String,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        namespace: "k8s.io".to_owned(),
        ..Options::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .with_context(|| format!("{flag} takes a value"))
        };
        match arg.as_str() {
            "--import" => options.import = Some(PathBuf::from(value("--import")?)),
            "--namespace" => options.namespace = value("--namespace")?,
            other => bail!("unknown argument {other:?} (--import SOCKET, --namespace NS)"),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let release = workspace::build_release_bins()?;
    let (dir, images) = build_images(
        &release,
        &crate::test_assets::ensure(&[crate::test_assets::Assets::Node])?,
    )?;
    match &options.import {
        Some(socket) => {
            for image in &images {
                eprintln!("importing {} into containerd", image.reference());
                workspace::run(
                    Command::new("ctr")
                        .arg("--address")
                        .arg(socket)
                        .args(["--namespace", &options.namespace])
                        .args(["images", "import"])
                        .arg(image.archive(&dir)),
                )?;
            }
        }
        None => eprintln!(
            "images written to {}; import them with `ctr -n k8s.io images import FILE` \
             (or `cargo xtask images --import SOCKET`), or load them into kind with \
             `kind load image-archive FILE`",
            dir.display()
        ),
    }
    for image in &images {
        println!("{}", image.reference());
    }
    Ok(())
}

/// Builds every image from the binaries in `release` and the Prometheus in
/// `assets` (`cargo xtask test-assets`) into `target/images/`; returns that
/// directory.
pub fn build(release: &Path, assets: &Path) -> anyhow::Result<PathBuf> {
    Ok(build_images(release, assets)?.0)
}

/// Where [`build`] writes the images: `target/images/`.
pub fn dir() -> PathBuf {
    workspace::target_dir().join("images")
}

/// The packages the images are made of, then every image into
/// `target/images/`: that directory and the images.
fn build_images(release: &Path, assets: &Path) -> anyhow::Result<(PathBuf, Vec<Image>)> {
    system::ensure(&[&system::BUILDAH, &system::POSTGRESQL, &system::NATS])?;
    let dir = dir();
    let images = build_all(release, assets, &dir)?;
    Ok((dir, images))
}

/// Builds every image into `dir`; returns them.
fn build_all(release: &Path, assets: &Path, dir: &Path) -> anyhow::Result<Vec<Image>> {
    let prometheus = assets.join("prometheus");
    let mut images = catalogue(release, &prometheus, &prometheus_version(&prometheus)?);
    images.push(pause(&compile_pause(dir)?));
    images.push(servers::postgres(&dir.join("layers/postgres"))?);
    images.push(servers::nats(&dir.join("layers/nats"))?);
    let base = dir.join("base");
    assemble_base(&base)?;
    let buildah = Buildah {
        storage: dir.join("storage"),
    };
    for image in &images {
        eprintln!("building {}", image.reference());
        buildah.build(image, &base, &image.archive(dir))?;
    }
    buildah.prune()?;
    Ok(images)
}

/// `xtask/images/pause.c`, linked statically.
fn compile_pause(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = dir.join("pause");
    std::fs::create_dir_all(dir)?;
    workspace::run(
        Command::new("gcc")
            .args(["-static", "-Os", "-Wall", "-o"])
            .arg(&out)
            .arg(workspace::root().join("xtask/images/pause.c")),
    )
    .context("compile the pause program (gcc and Debian's libc6-dev)")?;
    Ok(out)
}

/// The base's files: those of [`BASE_PACKAGES`] as `dpkg` installed them
/// here, the CA bundle made from the certificates, and the user.
fn assemble_base(root: &Path) -> anyhow::Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("remove {}", root.display()))?;
    }
    std::fs::create_dir_all(root)?;
    let listing =
        output(Command::new("dpkg").arg("-L").args(BASE_PACKAGES)).with_context(|| {
            format!(
                "the base is made of Debian's {}: install them (apt-get install {0})",
                BASE_PACKAGES.join(" ")
            )
        })?;
    for line in listing.lines().filter(|l| l.starts_with('/')) {
        let source = Path::new(line);
        let target = root.join(line.trim_start_matches('/'));
        // Packages share directories (`/lib`, a symlink on merged-/usr
        // systems): each is made once.
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let meta = std::fs::symlink_metadata(source)
            .with_context(|| format!("{line} is listed by dpkg but missing"))?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if meta.is_dir() {
            std::fs::create_dir_all(&target).with_context(|| format!("make {line}"))?;
        } else if meta.file_type().is_symlink() {
            let points_to = std::fs::read_link(source)?;
            // A link to a directory (merged /usr: `/lib -> usr/lib`) needs
            // that directory, or paths through it cannot be made.
            if source.is_dir() {
                let resolved = match points_to.strip_prefix("/") {
                    Ok(absolute) => root.join(absolute),
                    Err(_) => target.parent().unwrap_or(root).join(&points_to),
                };
                std::fs::create_dir_all(resolved)?;
            }
            std::os::unix::fs::symlink(&points_to, &target)
                .with_context(|| format!("link {line}"))?;
        } else {
            std::fs::copy(source, &target).with_context(|| format!("copy {line}"))?;
        }
    }
    // update-ca-certificates makes the bundle at install time; so do we.
    let mut bundle = String::new();
    let mut certificates: Vec<PathBuf> =
        std::fs::read_dir(root.join("usr/share/ca-certificates/mozilla"))
            .context("ca-certificates' certificates")?
            .flatten()
            .map(|e| e.path())
            .collect();
    certificates.sort();
    for certificate in certificates {
        bundle.push_str(&std::fs::read_to_string(&certificate)?);
    }
    std::fs::create_dir_all(root.join("etc/ssl/certs"))?;
    std::fs::write(root.join("etc/ssl/certs/ca-certificates.crt"), bundle)?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n")?;
    std::fs::create_dir_all(root.join("tmp"))?;
    std::fs::set_permissions(
        root.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    Ok(())
}

/// buildah with storage of its own: nothing under /var/lib/containers.
struct Buildah {
    storage: PathBuf,
}

impl Buildah {
    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("run"))
            // Works wherever buildah runs, overlay mounts or not.
            .args(["--storage-driver", "vfs"]);
        command
    }

    fn build(&self, image: &Image, base: &Path, archive: &Path) -> anyhow::Result<()> {
        let container = output(self.command().args(["from", "scratch"]))?;
        let container = container.trim();
        let built = (|| {
            if image.on_base {
                workspace::run(
                    self.command()
                        .args(["copy", container])
                        .arg(format!("{}/", base.display()))
                        .arg("/"),
                )?;
            }
            for layer in &image.layers {
                let mut copy = self.command();
                copy.arg("copy");
                if let Some(owner) = layer.owner {
                    copy.args(["--chown", owner]);
                }
                workspace::run(
                    copy.arg(container)
                        .arg(format!("{}/", layer.dir.display()))
                        .arg("/"),
                )?;
            }
            workspace::run(
                self.command()
                    .args(["copy", "--chmod", "0755", container])
                    .arg(&image.program)
                    .arg(&image.entrypoint),
            )?;
            for variable in &image.env {
                workspace::run(
                    self.command()
                        .args(["config", "--env", variable, container]),
                )?;
            }
            workspace::run(self.command().args([
                "config",
                "--label",
                &format!("org.opencontainers.image.version={}", image.version),
                "--user",
                image.user,
                "--workingdir",
                "/",
                "--entrypoint",
                &serde_json::to_string(&[&image.entrypoint])?,
                "--cmd",
                "",
                container,
            ]))?;
            // It prints the image id; the reference is printed at the end.
            output(self.command().args([
                "commit",
                "--quiet",
                "--rm",
                container,
                &image.reference(),
            ]))?;
            if archive.exists() {
                std::fs::remove_file(archive)?;
            }
            workspace::run(self.command().args([
                "push",
                "--quiet",
                &image.reference(),
                &format!("docker-archive:{}:{}", archive.display(), image.reference()),
            ]))
        })();
        if built.is_err() {
            let _ = self.command().args(["rm", container]).status();
        }
        built
    }

    /// Drops the layers of images replaced by this build.
    fn prune(&self) -> anyhow::Result<()> {
        let _ = self.command().args(["rmi", "--prune"]).output()?;
        Ok(())
    }
}

/// `2.53.2` from `prometheus, version 2.53.2 (branch: …)` (or Debian's
/// `2.42.0+ds`).
fn prometheus_version(prometheus: &Path) -> anyhow::Result<String> {
    let text = output(Command::new(prometheus).arg("--version"))?;
    parse_prometheus_version(&text)
        .with_context(|| format!("cannot read the version of {}", prometheus.display()))
}

fn parse_prometheus_version(text: &str) -> Option<String> {
    let version = text.split("version ").nth(1)?.split_whitespace().next()?;
    let version = version.split('+').next()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

/// Runs `command`; its standard output, or an error with its standard error.
fn output(command: &mut Command) -> anyhow::Result<String> {
    let line = format!("{command:?}");
    let out = command
        .output()
        .with_context(|| format!("cannot start {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debians_prometheus_version() {
        assert_eq!(
            parse_prometheus_version(
                "prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5)"
            ),
            Some("2.42.0".to_owned())
        );
        assert_eq!(
            parse_prometheus_version("prometheus, version 3.1.0 (branch: HEAD)"),
            Some("3.1.0".to_owned())
        );
        assert_eq!(parse_prometheus_version("no version here"), None);
    }

    #[test]
    fn images_are_named_as_the_manifests_name_them() {
        let images = catalogue(
            Path::new("/w/target/release"),
            Path::new("/usr/bin/prometheus"),
            "2.42.0",
        );
        let references: Vec<String> = images.iter().map(Image::reference).collect();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            references,
            [
                format!("ghcr.io/homeostat-dev/oms-sample:{version}"),
                format!("ghcr.io/homeostat-dev/homeostat-operator:{version}"),
                format!("ghcr.io/homeostat-dev/homeostat-detector:{version}"),
                "ghcr.io/homeostat-dev/prometheus:v2.42.0".to_owned(),
            ]
        );
        assert_eq!(images[0].entrypoint, "/usr/local/bin/oms");
        assert_eq!(images[0].program, Path::new("/w/target/release/oms"));
    }

    #[test]
    fn parses_where_to_import() {
        let args = ["--import", "/run/containerd/containerd.sock"].map(String::from);
        let options = parse(&args).expect("options");
        assert_eq!(
            options.import.as_deref(),
            Some(Path::new("/run/containerd/containerd.sock"))
        );
        assert_eq!(options.namespace, "k8s.io");
        assert!(parse(&["--import".to_owned()]).is_err());
        assert!(parse(&["--push".to_owned()]).is_err());
    }
}
