//! Clients of other services: keystone, conductor, placement, neutron.
