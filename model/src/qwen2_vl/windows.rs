//! Qwen2.5-VL's attention windows (HF `get_vision_window_index`): each image frame's grid of
//! merged tokens is cut into squares of `window` tokens a side, row by row from the top left
//! (those at the right and bottom edges partial), and the tokens are put in window order — the
//! windows in order, each window's tokens row by row. The tower runs its blocks in that order
//! (window blocks attend within each window, full blocks within each frame, whose tokens stay
//! contiguous) and puts the merged tokens back in the processor's order after the merger.

/// The window order of a batch of images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOrder {
    /// For each position of the window order, the merged token it takes (its index in the
    /// processor's order, counted over every image).
    pub index: Vec<usize>,
    /// Patches per window, in order (HF's `cu_window_seqlens` differences; empty windows left
    /// out as HF's `unique_consecutive` drops them).
    pub windows: Vec<usize>,
}

impl WindowOrder {
    /// The window order of images with patch grids `grids` (`[t, h, w]`, sides multiples of
    /// `merge`), for windows of `window` merged tokens a side (at least 1).
    pub fn new(grids: &[[usize; 3]], merge: usize, window: usize) -> Self {
        let window = window.max(1);
        let mut order = WindowOrder {
            index: Vec::new(),
            windows: Vec::new(),
        };
        let mut offset = 0;
        for &[t, h, w] in grids {
            let (rows, cols) = (h / merge, w / merge);
            for frame in 0..t {
                let first = offset + frame * rows * cols;
                order.add_frame(first, rows, cols, window, merge * merge);
            }
            offset += t * rows * cols;
        }
        order
    }

    /// Appends the windows of one frame of `rows × cols` merged tokens numbered from `first`.
    fn add_frame(&mut self, first: usize, rows: usize, cols: usize, window: usize, unit: usize) {
        for top in (0..rows).step_by(window) {
            for left in (0..cols).step_by(window) {
                let before = self.index.len();
                for row in top..(top + window).min(rows) {
                    let start = first + row * cols;
                    self.index
                        .extend(start + left..start + (left + window).min(cols));
                }
                self.windows.push((self.index.len() - before) * unit);
            }
        }
    }

    /// The inverse permutation: for each merged token in the processor's order, its position in
    /// the window order (HF's `argsort(window_index)`).
    pub fn inverse(&self) -> Vec<usize> {
        let mut inverse = vec![0; self.index.len()];
        for (position, &token) in self.index.iter().enumerate() {
            inverse[token] = position;
        }
        inverse
    }

    /// `values`, `per_token` consecutive entries per merged token, put in window order.
    pub fn reorder<T: Copy>(&self, values: &[T], per_token: usize) -> Vec<T> {
        self.index
            .iter()
            .flat_map(|&token| &values[token * per_token..(token + 1) * per_token])
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6 × 8 patch grid at merge 2 is 3 × 4 merged tokens, numbered row by row:
    ///
    /// ```text
    ///  0  1 |  2  3
    ///  4  5 |  6  7
    /// ------+------
    ///  8  9 | 10 11
    /// ```
    ///
    /// Windows of 2 × 2 tokens: two full ones on top, two half ones below. Then a 4 × 4 patch
    /// image (2 × 2 tokens, 12..16) is exactly one window.
    #[test]
    fn windows_follow_a_hand_worked_case() {
        let order = WindowOrder::new(&[[1, 6, 8], [1, 4, 4]], 2, 2);
        assert_eq!(
            order.index,
            vec![0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
        );
        assert_eq!(order.windows, vec![16, 16, 8, 8, 16]);
        let inverse = order.inverse();
        assert_eq!(&inverse[..8], &[0, 1, 4, 5, 2, 3, 6, 7]);
        let values: Vec<usize> = (0..16).collect();
        let ordered = order.reorder(&values, 1);
        let back: Vec<usize> = inverse.iter().map(|&p| ordered[p]).collect();
        assert_eq!(back, values);
        let values: Vec<usize> = (0..32).collect();
        let pairs = order.reorder(&values, 2);
        assert_eq!(&pairs[..6], &[0, 1, 2, 3, 8, 9]);
    }

    /// Frames are windowed one at a time; a window wider than the grid is the whole frame.
    #[test]
    fn frames_and_wide_windows() {
        let order = WindowOrder::new(&[[2, 2, 4]], 2, 4);
        assert_eq!(order.index, vec![0, 1, 2, 3]);
        assert_eq!(order.windows, vec![8, 8]);
        let single = WindowOrder::new(&[[1, 6, 2]], 2, 1);
        assert_eq!(single.index, vec![0, 1, 2]);
        assert_eq!(single.windows, vec![4, 4, 4]);
    }
}
