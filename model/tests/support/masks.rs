//! The attention masks the kernel tests share: left padding with causality, as the model
//! builds them for a batch of rows of different lengths.

/// Row `b` of `[B, T]` has its first `b` keys as padding (left padding), causal after that.
/// With `see_self`, a query always sees its own position (the model's padding queries do);
/// without it, the first queries of padded rows see no key at all (their output must be zeros;
/// Burn's gradients there are NaN, so only values are compared).
pub fn padding_causal(shape: [usize; 4], see_self: bool) -> Vec<bool> {
    let [batch, heads, seq_q, seq_k] = shape;
    (0..batch * heads * seq_q * seq_k)
        .map(|index| {
            let (key, query) = (index % seq_k, index / seq_k % seq_q);
            let row = index / (heads * seq_q * seq_k);
            let own = seq_k - seq_q + query;
            (key < row && !(see_self && key == own)) || key > own
        })
        .collect()
}
