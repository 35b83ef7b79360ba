//! Pass/fail lines the scripts count: `  PASS name (figure)`.

#[derive(Default)]
pub struct Checks {
    passed: usize,
    failed: usize,
    lines: Vec<String>,
}

impl Checks {
    pub fn zero(&mut self, name: &str, value: u64) {
        self.add(name, value, value == 0);
    }

    pub fn at_least(&mut self, name: &str, value: u64, min: u64) {
        self.add(&format!("{name} (want >= {min})"), value, value >= min);
    }

    pub fn at_most(&mut self, name: &str, value: u64, max: u64) {
        self.add(&format!("{name} (want <= {max})"), value, value <= max);
    }

    fn add(&mut self, name: &str, value: u64, ok: bool) {
        let verdict = if ok { "PASS" } else { "FAIL" };
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        self.lines.push(format!("  {verdict} {name}: {value}"));
    }

    /// Prints every line and a count; true when nothing failed.
    pub fn print(&self, label: &str) -> bool {
        for line in &self.lines {
            println!("{line}");
        }
        println!(
            "{label}: {} checks passed, {} failed",
            self.passed, self.failed
        );
        self.failed == 0
    }
}
