//! Prints every homeostat CRD as one multi-document YAML stream, for
//! `crdgen | kubectl apply -f -`. The committed copies live in `crds/`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    for crd in homeostat_api::all_crds() {
        let yaml = match homeostat_api::render_crd_yaml(&crd) {
            Ok(yaml) => yaml,
            Err(err) => {
                eprintln!(
                    "crdgen: cannot render {}: {err}",
                    homeostat_api::crd_file_name(&crd)
                );
                return ExitCode::FAILURE;
            }
        };
        if writeln!(out, "---\n{yaml}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
