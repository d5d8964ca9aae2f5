//! backupctl's entry point.

fn main() {
    std::process::exit(backupctl::run());
}
