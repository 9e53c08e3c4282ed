//! The Docker driver: instances as containers through bollard.
