//! `homeostat-detector`: the anomaly detector's command line.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use homeostat_detector::csv::score_csv;
use homeostat_detector::model::NoveltyConfig;

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
        /// Points that fix the bin width (they score 0).
        #[arg(long, default_value_t = NoveltyConfig::default().calibration)]
        calibration: usize,
        /// Bins across the central 99% of the calibration points.
        #[arg(long, default_value_t = NoveltyConfig::default().bins)]
        bins: u32,
        /// Points whose bins count as visited.
        #[arg(long, default_value_t = NoveltyConfig::default().memory)]
        memory: usize,
        /// Points after a novelty during which a weaker one is not news.
        #[arg(long, default_value_t = NoveltyConfig::default().refractory)]
        refractory: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ScoreCsv {
            file,
            calibration,
            bins,
            memory,
            refractory,
        } => std::fs::File::open(&file)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))
            .and_then(|f| {
                let out = BufWriter::new(std::io::stdout().lock());
                let config = NoveltyConfig {
                    calibration,
                    bins,
                    memory,
                    refractory,
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
