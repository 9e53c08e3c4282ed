# Test set-up of the userdata module (sourced by devstack/run-tests.sh after
# Docker, the venv and the test image are ready).
#
# tests/userdata_docker.rs runs containers on the local Docker engine and binds
# directories it makes under the system temp dir: the engine must be local (it
# is, see nd_ensure_docker). tests/userdata_decode.rs builds Heat-style MIME
# documents with the venv's Python (its email package, standard library).
# Nothing else to install; check the two are there.
docker info >/dev/null 2>&1 || nd_die "userdata tests: the Docker engine does not answer"
"$ND_VENV/bin/python" -c 'import email.mime.multipart' 2>/dev/null \
  || nd_die "userdata tests: $ND_VENV/bin/python lacks the email package"
