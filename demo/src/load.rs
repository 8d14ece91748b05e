//! The demo's traffic: `oms loadgen` processes on this machine, whatever
//! runs the OMS — the customers' mix to `orders`, and surges straight to a
//! service. They stop when dropped.

use std::path::PathBuf;
use std::process::Command;

use homeostat_test_support::ManagedProcess;

use crate::scenario::Load;

pub struct LoadGenerators {
    oms_bin: PathBuf,
    log_dir: PathBuf,
    customers: Option<ManagedProcess>,
    surges: Vec<ManagedProcess>,
    started: usize,
}

impl LoadGenerators {
    pub fn new(oms_bin: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            oms_bin,
            log_dir,
            customers: None,
            surges: Vec::new(),
            started: 0,
        }
    }

    fn spawn(&mut self, args: &[String]) -> anyhow::Result<ManagedProcess> {
        self.started += 1;
        let mut command = Command::new(&self.oms_bin);
        command
            .arg("loadgen")
            .args(args)
            .arg(format!("--seed={}", 41 + self.started));
        let log = self.log_dir.join(format!("loadgen-{}.log", self.started));
        Ok(ManagedProcess::spawn("oms loadgen", command, &log)?)
    }

    /// Customers at `rate` a second to `orders_url` for `seconds`,
    /// replacing the running generator with no gap in traffic.
    pub fn customers(
        &mut self,
        orders_url: &str,
        load: &Load,
        rate: f64,
        seconds: f64,
    ) -> anyhow::Result<()> {
        let next = self.spawn(&[
            format!("--target={orders_url}"),
            format!("--new-orders={}", load.new_order_percent),
            format!("--lookups={}", load.lookup_percent),
            format!("--rate={rate}"),
            format!("--duration={seconds}"),
        ])?;
        // The old one stops only once the new one runs.
        if let Some(mut old) = self.customers.replace(next) {
            old.stop();
        }
        Ok(())
    }

    /// Price quotes at `rate` a second straight to tax at `tax_url`, for
    /// `seconds`: the load generator ends the surge by itself.
    pub fn quote_surge(&mut self, tax_url: &str, rate: f64, seconds: f64) -> anyhow::Result<()> {
        let surge = self.spawn(&[
            format!("--target={tax_url}"),
            "--new-orders=0".to_owned(),
            "--lookups=0".to_owned(),
            "--quotes=100".to_owned(),
            format!("--rate={rate}"),
            format!("--duration={seconds}"),
        ])?;
        self.surges.push(surge);
        Ok(())
    }
}
