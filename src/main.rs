//! The `sesame` binary: the command line lives in [`sesame::cli`].

fn main() -> std::process::ExitCode {
    sesame::cli::main()
}
