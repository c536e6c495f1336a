//! The Idefics3/SmolVLM vision-language model in Burn.
