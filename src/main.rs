//! The `pgha` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use pgha::cli::{CertCommand, Cli, Command, ConfigCommand, LogArgs, LogFormatArg};
use pgha::config::{Config, LogFormat, Overrides, Purpose, Role};

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    if let Command::Fence { deadline_file, pgdata } = &cli.command {
        // No runtime, no threads: the fencer must stay tiny and independent.
        pgha::fence::run(deadline_file, pgdata);
        return ExitCode::SUCCESS;
    }
    if let Command::FenceVip {
        deadline_file,
        address,
        interface,
    } = &cli.command
    {
        // No multi-threaded runtime: like `fence`, it must stay tiny and independent of the edge process.
        return match pgha::edge::vip::fence::run(deadline_file, address, interface) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pgha fence-vip: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    pgha::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        // A documented ctl exit code (`ctl health`, `ctl members`).
        Err(e) if e.downcast_ref::<pgha::ctl::Exit>().is_some() => {
            let code = e.downcast_ref::<pgha::ctl::Exit>().map_or(1, |x| x.code);
            let message = format!("{e:#}");
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives every thread its own malloc arena; with tokio's workers and Raft's steady churn of small buffers a
/// member's RSS grew by ~15 MB of fragmentation (measured with `pgha bench dcs`). One arena keeps it small; pgha's
/// allocation rate is far too low for arena contention to matter.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn init_logging(config: &Config, flags: &LogArgs) {
    let format = match flags.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Human) => LogFormat::Human,
        None => config.log.format,
    };
    pgha::logging::init(format, flags.log_level.as_deref().unwrap_or(&config.log.level));
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            let role: Role = args.role.into();
            let overrides = Overrides {
                name: args.name,
                data_dir: args.data_dir,
                listen: args.listen,
                advertise: args.advertise,
                peers: args.peers,
                endpoints: None,
            };
            let config = Config::load(args.config.as_deref(), Purpose::Run(role), &overrides)?;
            init_logging(&config, &args.log);
            pgha::run::run(config, role).await
        }
        Command::Cert(CertCommand::Init {
            dir,
            cluster,
            days,
            force,
        }) => {
            let paths = pgha::cert::init_ca(&dir, &cluster, days, force)?;
            println!(
                "CA certificate: {}\nCA key:         {} (mode 0600)",
                paths.cert.display(),
                paths.key.display()
            );
            Ok(())
        }
        Command::Cert(CertCommand::Issue {
            dir,
            role,
            name,
            cluster,
            ip,
            dns,
            days,
        }) => {
            let Some(role) = role else {
                anyhow::bail!(
                    "--role is required: one of {} ({})",
                    pgha::identity::CertRole::choices(),
                    pgha::identity::role::ROLE_HELP
                );
            };
            let spec = pgha::cert::IssueSpec {
                role: Some(role.into()),
                name: &name,
                ips: &ip,
                dns: &dns,
                cluster: cluster.as_deref(),
            };
            let paths = pgha::cert::issue_spec(&dir, &spec, days)?;
            print!("{}", pgha::cert_show::issued(&paths));
            Ok(())
        }
        Command::Cert(CertCommand::Show { file }) => {
            print!("{}", pgha::cert_show::show(&file)?);
            Ok(())
        }
        Command::Config(ConfigCommand::Example { role }) => {
            print!("{}", pgha::config::example(role.into()));
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file, role }) => {
            let role: Role = role.into();
            Config::load(Some(&file), Purpose::Run(role), &Overrides::default())
                .with_context(|| format!("{} is not a valid {role} config", file.display()))?;
            println!("{}: valid {role} config", file.display());
            Ok(())
        }
        Command::Ctl(args) => pgha::ctl::run(args).await,
        Command::Demo(args) => pgha::demo::run(args).await,
        Command::Bench(cmd) => pgha::bench::run(cmd).await,
        Command::Completions { shell } => write_stdout(&pgha::completions::completions(shell)),
        Command::Man { dir: None } => write_stdout(&pgha::completions::man_page().context("rendering the man page")?),
        Command::Man { dir: Some(dir) } => {
            let pages = pgha::completions::man_pages(&dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
            println!("{} man pages in {}", pages.len(), dir.display());
            Ok(())
        }
        Command::Fence { .. } | Command::FenceVip { .. } => Ok(()), // handled before the runtime starts
    }
}
