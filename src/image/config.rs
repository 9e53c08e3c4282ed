//! The options of the image service: `[glance]` and `[image_cache]`.

use std::time::Duration;

use crate::config::{ConfigError, Ini};

use super::registry::RegistryConfig;
use super::GlanceConfig;

/// Options of the image service.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub glance: GlanceConfig,
    /// `[docker_registry]`: registry images.
    pub registry: RegistryConfig,
    /// `[image_cache] remove_unused_original_minimum_age_seconds`.
    pub remove_unused_minimum_age: Duration,
}

impl ImageConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        Ok(ImageConfig {
            glance: GlanceConfig::from_ini(ini)?,
            registry: RegistryConfig::from_ini(ini)?,
            remove_unused_minimum_age: ini
                .group("image_cache")
                .secs("remove_unused_original_minimum_age_seconds", 86400)?,
        })
    }
}
