# Set-up of the registry tests (sourced by devstack/run-tests.sh after the
# control plane is up and nd_seed): the lab's container registry running (as
# stack.sh starts it, devstack/lib/registry.sh: TLS with the lab CA, basic auth
# for user nova-docker) with the test image busybox:latest pushed as
# lab/busybox:latest, and the public Glance image busybox-registry whose
# docker_image_ref is that image by digest. The tests find it through
# NOVA_DOCKER_E2E_REGISTRY* (nd_export_lab_env); they count the manifest and
# blob GETs in NOVA_DOCKER_E2E_REGISTRY_LOG (Combined Log Format lines,
# "GET /v2/lab/busybox/manifests/<ref> HTTP/..." and ".../blobs/sha256:...").

nd_registry_up busybox:latest
nd_registry_seed
