//! Networking: VIF drivers that wire containers from Nova's network_info.
