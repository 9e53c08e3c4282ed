#!/bin/bash
# DevStack plugin: enable_plugin nova-docker <url of this repository>
# Builds nova-docker-compute, points it at the nova-cpu.conf DevStack writes for
# Python nova-compute (the same file configures us), and runs it as a service.

function install_nova_docker {
    if ! command -v cargo >/dev/null; then
        die $LINENO "nova-docker needs a Rust toolchain (cargo) on this node"
    fi
    if ! docker info >/dev/null 2>&1; then
        install_package docker.io
        sudo systemctl enable --now docker
    fi
    (cd "$NOVA_DOCKER_DIR" && cargo build --release --bin nova-docker-compute)
    sudo install -m 0755 "$NOVA_DOCKER_DIR/target/release/nova-docker-compute" "$NOVA_DOCKER_BIN"
}

function configure_nova_docker {
    local conf=${NOVA_CPU_CONF:-/etc/nova/nova-cpu.conf}
    iniset "$conf" DEFAULT compute_driver docker.DockerDriver
    iniset "$conf" docker host_url unix:///var/run/docker.sock
    # Glance must accept docker images
    if is_service_enabled g-api; then
        iniset "$GLANCE_API_CONF" image_format container_formats "ami,ari,aki,bare,ovf,ova,docker"
    fi
}

function start_nova_docker {
    local conf=${NOVA_CPU_CONF:-/etc/nova/nova-cpu.conf}
    run_process nova-docker-compute "$NOVA_DOCKER_BIN --config-file $conf" root root
}

function stop_nova_docker {
    stop_process nova-docker-compute
}

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    install_nova_docker
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    configure_nova_docker
elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    start_nova_docker
fi
if [[ "$1" == "unstack" ]]; then
    stop_nova_docker
fi
