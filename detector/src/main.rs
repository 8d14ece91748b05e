//! `homeostat-detector`: the anomaly detector's command line.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use homeostat_detector::csv::score_csv;
use homeostat_detector::model::SeriesDetectorConfig;

#[derive(Parser)]
#[command(
    name = "homeostat-detector",
    version,
    about = "The homeostat anomaly detector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a `timestamp,value` CSV offline, learning online from its first
    /// row; writes `timestamp,value,anomaly_score` to stdout.
    ScoreCsv {
        /// The CSV file.
        file: PathBuf,
        /// Points in the robust level/step window.
        #[arg(long, default_value_t = SeriesDetectorConfig::default().window)]
        window: usize,
        /// Points whose surprises define normal.
        #[arg(long, default_value_t = SeriesDetectorConfig::default().long)]
        long: usize,
        /// Points averaged for the current state.
        #[arg(long, default_value_t = SeriesDetectorConfig::default().short)]
        short: usize,
        /// Points before any score above 0.
        #[arg(long, default_value_t = SeriesDetectorConfig::default().min_history)]
        min_history: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ScoreCsv {
            file,
            window,
            long,
            short,
            min_history,
        } => std::fs::File::open(&file)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))
            .and_then(|f| {
                let out = BufWriter::new(std::io::stdout().lock());
                let config = SeriesDetectorConfig {
                    window,
                    long,
                    short,
                    min_history,
                };
                score_csv(BufReader::new(f), out, config)
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("homeostat-detector: {err:#}");
            ExitCode::FAILURE
        }
    }
}
