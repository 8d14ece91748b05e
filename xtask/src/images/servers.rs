//! PostgreSQL and NATS images for an OrderSystem's in-cluster servers, made
//! from Debian's packages as installed here, with the upstream images'
//! interfaces (PostgreSQL: the POSTGRES_* variables, PGDATA, arguments to
//! `postgres`, `pg_isready`, user 999; NATS: arguments to `nats-server`), so
//! the operator renders the same pod for these and for the upstream ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{DEBIAN_TAG, Image, Layer, USER, output};
use crate::workspace;

/// Debian's `postgres` user, the upstream image's too.
const POSTGRES_USER: &str = "999:999";
/// Of PostgreSQL's programs, those the entrypoint and the probe run.
const POSTGRES_PROGRAMS: [&str; 3] = ["postgres", "initdb", "pg_isready"];

/// `homeostat-dev/postgres:debian`, from the newest PostgreSQL under
/// /usr/lib/postgresql. `layers` is where its files are assembled.
pub(super) fn postgres(layers: &Path) -> anyhow::Result<Image> {
    let major = newest_postgres()?;
    let home = PathBuf::from(format!("/usr/lib/postgresql/{major}"));
    let files = layers.join("files");
    let owned = layers.join("owned");
    for dir in [&files, &owned] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
    }
    let mut programs: Vec<PathBuf> = POSTGRES_PROGRAMS
        .iter()
        .map(|p| home.join("bin").join(p))
        .collect();
    for program in &programs {
        copy_into(&files, program)?;
    }
    // Its modules (plpgsql, the snowball dictionaries initdb loads), its
    // share directory (found relative to the programs) and the time zones.
    // Not the JIT: it links LLVM (130 MB), and PostgreSQL runs without it.
    copy_tree(&files, &home.join("lib"))?;
    let modules = files.join(home.join("lib").strip_prefix("/")?);
    for jit in ["llvmjit.so", "llvmjit_types.bc", "bitcode"] {
        let path = modules.join(jit);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else if path.exists() {
            std::fs::remove_file(&path)?;
        }
    }
    copy_tree(&files, Path::new(&format!("/usr/share/postgresql/{major}")))?;
    copy_tree(&files, Path::new("/usr/share/zoneinfo"))?;
    // The entrypoint's shell.
    let dash = Path::new("/bin/dash");
    copy_as(&files, dash, Path::new("/bin/sh"))?;
    programs.push(dash.to_owned());
    programs.extend(shared_objects(&modules)?);
    for library in libraries(&programs)? {
        copy_as(&files, &library.file, &library.path)?;
    }
    // initdb looks its user up.
    std::fs::create_dir_all(files.join("etc"))?;
    std::fs::write(
        files.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\n\
         postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/sbin/nologin\n\
         nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    std::fs::write(
        files.join("etc/group"),
        "root:x:0:\npostgres:x:999:\nnonroot:x:65532:\n",
    )?;
    // Where it writes: its data and its socket (volumes in a pod).
    for dir in ["var/lib/postgresql/data", "var/run/postgresql"] {
        std::fs::create_dir_all(owned.join(dir))?;
    }
    Ok(Image {
        name: "postgres",
        tag: DEBIAN_TAG.to_owned(),
        version: major.to_string(),
        program: workspace::root().join("xtask/images/postgres-entrypoint.sh"),
        entrypoint: "/usr/local/bin/docker-entrypoint.sh".to_owned(),
        on_base: true,
        user: POSTGRES_USER,
        layers: vec![
            Layer {
                dir: files,
                owner: None,
            },
            Layer {
                dir: owned,
                owner: Some(POSTGRES_USER),
            },
        ],
        env: vec![
            format!("PATH={}/bin:/usr/local/bin:/usr/bin:/bin", home.display()),
            "PGDATA=/var/lib/postgresql/data".to_owned(),
            "TZ=Etc/UTC".to_owned(),
        ],
    })
}

/// `homeostat-dev/nats:debian`, Debian's nats-server.
pub(super) fn nats(layers: &Path) -> anyhow::Result<Image> {
    let program = workspace::which("nats-server")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .context("nats-server is not installed (apt-get install nats-server)")?;
    let version = output(Command::new(&program).arg("--version"))?;
    let version = parse_nats_version(&version)
        .with_context(|| format!("cannot read the version of {}", program.display()))?;
    // The store directory, writable by the user it runs as.
    let owned = layers.join("owned");
    std::fs::create_dir_all(owned.join("data"))?;
    Ok(Image {
        name: "nats",
        tag: DEBIAN_TAG.to_owned(),
        version,
        program,
        entrypoint: "/nats-server".to_owned(),
        on_base: true,
        user: USER,
        layers: vec![Layer {
            dir: owned,
            owner: Some(USER),
        }],
        env: Vec::new(),
    })
}

/// `2.9.10` from `nats-server: v2.9.10`.
fn parse_nats_version(text: &str) -> Option<String> {
    let version = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_owned())
}

fn newest_postgres() -> anyhow::Result<u32> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin/postgres").is_file())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .context("no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)")
}

/// A shared library a program needs: the name it asks for, where the
/// dynamic linker finds it (`path`, through any directory links resolved),
/// and the file behind it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Library {
    path: PathBuf,
    file: PathBuf,
}

/// What `programs` link against, as `ldd` resolves it here; libraries it
/// cannot find (modules for packages not installed) are left out.
fn libraries(programs: &[PathBuf]) -> anyhow::Result<Vec<Library>> {
    let mut found = std::collections::BTreeSet::new();
    for program in programs {
        let listing = Command::new("ldd")
            .arg(program)
            .output()
            .context("run ldd")?;
        for path in parse_ldd(&String::from_utf8_lossy(&listing.stdout)) {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let file = std::fs::canonicalize(&path)
                .with_context(|| format!("resolve {}", path.display()))?;
            found.insert(Library {
                path: std::fs::canonicalize(dir)?.join(name),
                file,
            });
        }
    }
    Ok(found.into_iter().collect())
}

/// The resolved paths in `ldd`'s listing.
fn parse_ldd(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .filter_map(|line| {
            let resolved = line.split("=>").nth(1)?.split_whitespace().next()?;
            resolved.starts_with('/').then(|| PathBuf::from(resolved))
        })
        .collect()
}

fn shared_objects(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "so"))
        .collect())
}

/// Copies `source` to the same path under `root`.
fn copy_into(root: &Path, source: &Path) -> anyhow::Result<()> {
    copy_as(root, source, source)
}

/// Copies the file `source` to `target` (an absolute path) under `root`.
fn copy_as(root: &Path, source: &Path, target: &Path) -> anyhow::Result<()> {
    let Ok(relative) = target.strip_prefix("/") else {
        bail!("{} is not absolute", target.display());
    };
    let to = root.join(relative);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(source, &to)
        .with_context(|| format!("copy {} to {}", source.display(), to.display()))?;
    Ok(())
}

/// Copies the tree at `source` to the same path under `root`, links as links.
fn copy_tree(root: &Path, source: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(source)
        .with_context(|| format!("{} is missing", source.display()))?;
    let Ok(relative) = source.strip_prefix("/") else {
        bail!("{} is not absolute", source.display());
    };
    let target = root.join(relative);
    if meta.file_type().is_symlink() {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(std::fs::read_link(source)?, &target)
            .with_context(|| format!("link {}", target.display()))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(&target)?;
        for entry in std::fs::read_dir(source)?.flatten() {
            copy_tree(root, &entry.path())?;
        }
    } else {
        copy_into(root, source)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_libraries_ldd_resolves_and_skips_the_rest() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x00007f1)\n\
            \tlibperl.so.5.36 => not found\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f2)\n";
        assert_eq!(
            parse_ldd(listing),
            vec![PathBuf::from("/lib/x86_64-linux-gnu/libpq.so.5")]
        );
    }

    #[test]
    fn reads_debians_nats_version() {
        assert_eq!(
            parse_nats_version("nats-server: v2.9.10\n"),
            Some("2.9.10".into())
        );
        assert_eq!(parse_nats_version("nats-server: unknown"), None);
    }
}
