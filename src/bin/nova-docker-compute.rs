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
    /// oslo.config INI file; repeatable, later files override earlier ones
    /// (default /etc/nova/nova.conf).
    #[arg(long = "config-file", value_name = "PATH")]
    config_file: Vec<PathBuf>,
    /// Directory whose *.conf files are read after the config files, in name order.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dir: Vec<PathBuf>,
    /// Read the configuration, print what would be used (no secrets) or what
    /// is wrong with it, and exit (0: usable).
    #[arg(long = "check-config")]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create or update a Glance image (container_format docker, property
    /// docker_image_ref by digest) for every tag of a registry's repositories,
    /// with the [glance] credentials and [docker_registry] options of the
    /// configuration; prints what it did as JSON. A re-run changes nothing unless
    /// the registry changed.
    MirrorRegistry {
        /// The registry, host[:port].
        registry: String,
        /// Only this repository (repeatable; default: the registry's catalogue).
        #[arg(long = "repository", value_name = "NAME")]
        repositories: Vec<String>,
        /// Visibility of the images created.
        #[arg(long, default_value = "public")]
        visibility: String,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let files = if args.config_file.is_empty() {
        vec![PathBuf::from("/etc/nova/nova.conf")]
    } else {
        args.config_file
    };
    let ini = match nova_docker::config::Ini::load(&files, &args.config_dir) {
        Ok(ini) => ini,
        Err(e) if args.check_config => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("reading configuration")),
    };
    let settings = match nova_docker::daemon::Settings::from_ini(&ini) {
        Ok(s) => s,
        Err(e) if args.check_config => {
            eprintln!("configuration error: {e}");
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };
    if args.check_config {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!("configuration from {}: usable", names.join(", "));
        for line in settings.describe() {
            println!("  {line}");
        }
        return Ok(());
    }
    if let Some(Command::MirrorRegistry {
        registry,
        repositories,
        visibility,
    }) = args.command
    {
        return mirror_registry(&ini, settings, registry, repositories, visibility);
    }
    let log = nova_docker::logging::LogConfig::from_ini(&ini).context("logging options")?;
    nova_docker::logging::init(&log, &settings.default.host)
        .with_context(|| format!("log file {:?}", log.log_file))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(nova_docker::daemon::run(settings))?;
    Ok(())
}

fn mirror_registry(
    ini: &nova_docker::config::Ini,
    settings: nova_docker::daemon::Settings,
    registry: String,
    repositories: Vec<String>,
    visibility: String,
) -> anyhow::Result<()> {
    use nova_docker::clients::keystone::{AuthOptions, AuthType};
    use nova_docker::image::registry::mirror::MirrorRequest;
    // its report goes to standard output; its log lines to standard error
    nova_docker::logging::init(
        &nova_docker::logging::LogConfig::default(),
        &settings.default.host,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let report = rt.block_on(async {
        use nova_docker::image::registry::{mirror::mirror, RegistryClient};
        // [glance]'s credentials; a compute host's [glance] usually has none (it
        // uses the user's token), then those of [service_user]
        let mut gcfg = settings.image.glance;
        if gcfg.auth.auth_type == AuthType::None {
            let su = AuthOptions::from_group(ini, "service_user")?;
            gcfg.auth = AuthOptions {
                group: gcfg.auth.group.clone(),
                service_type: gcfg.auth.service_type.clone(),
                region_name: gcfg.auth.region_name.clone().or(su.region_name.clone()),
                valid_interfaces: gcfg.auth.valid_interfaces.clone(),
                endpoint_override: gcfg.auth.endpoint_override.clone(),
                ..su
            };
        }
        let glance = nova_docker::image::GlanceClient::new(gcfg)?;
        let client = RegistryClient::new(settings.image.registry)?;
        let req = MirrorRequest {
            registry,
            repositories,
            visibility,
        };
        // as the service user of [glance] (no user token)
        let ctx = nova_docker::context::RequestContext::default();
        anyhow::Ok(mirror(&client, &glance, &ctx, &req).await?)
    })?;
    println!("{}", report.to_json());
    Ok(())
}
