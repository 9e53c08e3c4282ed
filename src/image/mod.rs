//! The image service: Glance images streamed into Docker, snapshots streamed back.
