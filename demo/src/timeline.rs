//! The live timeline: each line printed with the time since warm-up ended
//! (setup time before that), and kept for the HTML report.

use tokio::time::Instant;

pub struct Timeline {
    zero: Option<Instant>,
    started: Instant,
    lines: Vec<String>,
}

impl Timeline {
    pub fn new() -> Self {
        Self {
            zero: None,
            started: Instant::now(),
            lines: Vec::new(),
        }
    }

    /// From now on, times count from `zero` (the end of warm-up).
    pub fn start_clock(&mut self, zero: Instant) {
        self.zero = Some(zero);
    }

    pub fn say(&mut self, line: &str) {
        let t = match self.zero {
            Some(zero) => format!(
                "t={:+6.1}s",
                Instant::now().duration_since(zero).as_secs_f64()
            ),
            None => format!("setup {:5.1}s", self.started.elapsed().as_secs_f64()),
        };
        let line = format!("[{t}] {line}");
        println!("{line}");
        self.lines.push(line);
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}
