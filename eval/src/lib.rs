//! safeaware-eval
