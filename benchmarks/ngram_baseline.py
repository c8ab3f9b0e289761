"""A character n-gram on a language-model preset's own split: the bar a teacher has to clear clearly.

    python benchmarks/ngram_baseline.py envs/lm.yaml [--order 6]

Interpolated absolute discounting (Ney, Essen & Kneser 1994), discount D = 0.75 at every order:

    P(c | h) = max(n(h c) − D, 0) / n(h) + D · N₁₊(h •) / n(h) · P(c | h⁻),   P(c | ∅ context) → uniform

with h⁻ the context h without its oldest character. It is counted on the teacher's training split and
scored on the test split with the context a model of the preset sees: the characters of the same
window only (the first positions of a window have shorter contexts). Prints nats per character.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict

from rltemp.config import load_config
from rltemp.kd.pipeline import prepare, teacher_data

D = 0.75


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("--order", type=int, default=6)
    a = ap.parse_args()
    cfg = load_config(a.preset, ["device=cpu"])
    data, device, _ = prepare(cfg)
    train = teacher_data(cfg, data, device).train
    k = a.order - 1  # context length
    counts: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(a.order)]  # by context length
    for row in train.x.tolist():
        s = "".join(chr(32 + i) for i in row)  # ids as characters: cheap string slicing
        for j in range(len(s)):
            for n in range(min(k, j) + 1):
                counts[n][s[j - n:j]][s[j]] += 1
    vocab = data.num_classes
    totals = [{h: (sum(c.values()), len(c)) for h, c in level.items()} for level in counts]

    def prob(h: str, c: str) -> float:
        p = 1.0 / vocab
        for n in range(len(h) + 1):  # shortest context first
            ctx = h[len(h) - n:]
            if ctx not in totals[n]:
                break
            total, types = totals[n][ctx]
            p = max(counts[n][ctx][c] - D, 0) / total + D * types / total * p
        return p

    nll, m = 0.0, 0
    for xs, ys in zip(data.test.x.tolist(), data.test.y.tolist(), strict=True):
        s = "".join(chr(32 + i) for i in xs)
        for p, y in enumerate(ys):
            nll -= math.log(prob(s[max(0, p + 1 - k):p + 1], chr(32 + y)))
            m += 1
    print(f"{a.preset}: character {a.order}-gram (interpolated absolute discounting, D={D}) on the test split: "
          f"{nll / m:.4f} nats/char over {m} characters")


if __name__ == "__main__":
    main()
