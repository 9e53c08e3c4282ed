# Set-up for the Docker driver's tests (sourced by devstack/run-tests.sh after Docker
# and the test image are ready). tests/docker_tls.rs puts the engine behind a TLS
# endpoint with socat, using certificates it makes with the openssl CLI.
nd_apt_install socat openssl
docker image inspect "$ND_TEST_IMAGE" >/dev/null 2>&1 || nd_build_test_image "$ND_TEST_IMAGE"
