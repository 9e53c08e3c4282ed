//! Nova versioned objects (oslo.versionedobjects primitives).
