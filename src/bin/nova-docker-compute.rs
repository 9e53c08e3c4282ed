//! The daemon: `nova-docker-compute --config-file /etc/nova/nova.conf`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "nova-docker-compute",
    version,
    about = "Nova compute service for Docker hosts"
)]
struct Args {
    /// oslo.config INI file; repeatable, later files override earlier ones.
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Vec<PathBuf>,
    /// Directory whose *.conf files are read after the config files, in name order.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let files = if args.config_file.is_empty() && args.config_dir.is_empty() {
        vec![PathBuf::from("/etc/nova/nova.conf")]
    } else {
        args.config_file
    };
    let ini = nova_docker::config::Ini::load(&files, &args.config_dir)
        .context("reading configuration")?;
    let d = nova_docker::config::DefaultConfig::from_ini(&ini).context("[DEFAULT]")?;
    println!("host {}", d.host);
    Ok(())
}
