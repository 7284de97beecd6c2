"""A character-level language model on text that ships with the machine: the GNU GPL v3 from
Debian's /usr/share/common-licenses (else Python's own argparse.py source), nothing downloaded.
A small MLP (Bengio et al., 2003) reads 8 characters through a learned embedding and predicts the
next; scored by minus the validation loss in bits per character on the text's last 10%.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NAME = "lm-chars"
STEPS = 600
CONTEXT, EMBED, HIDDEN, BATCH = 8, 16, 128, 64
CORPORA = (Path("/usr/share/common-licenses/GPL-3"), Path(__import__("argparse").__file__))


def prepare(seed: int):
    """Read the corpus (only here: files are unreadable once the sandbox locks down), map characters
    to ids, split 90/10. The same text for every seed; the seed only changes init and batches."""
    path = next(p for p in CORPORA if p.exists())
    text = path.read_text(encoding="utf-8", errors="replace")
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    cut = int(len(ids) * 0.9)
    return {"train": ids[:cut], "val": ids[cut:], "vocab": len(chars), "corpus": str(path)}


class CharMLP(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        self.hidden = nn.Linear(CONTEXT * EMBED, HIDDEN)
        self.out = nn.Linear(HIDDEN, vocab)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(self.embed(x).flatten(1))))


def windows(ids, starts):
    offsets = torch.arange(CONTEXT + 1)
    chunk = ids[starts.unsqueeze(1) + offsets]
    return chunk[:, :CONTEXT], chunk[:, CONTEXT]


def train(make_optimizer, data, seed: int, lr: float, steps: int):
    torch.manual_seed(seed)
    model = CharMLP(data["vocab"])
    optimizer = make_optimizer(model.parameters(), lr)
    order = torch.Generator().manual_seed(seed)
    train_ids, val_ids = data["train"], data["val"]
    for _ in range(steps):
        x, y = windows(train_ids, torch.randint(0, len(train_ids) - CONTEXT, (BATCH,), generator=order))
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x, y = windows(val_ids, torch.arange(0, len(val_ids) - CONTEXT))
        nats = F.cross_entropy(model(x), y).item()
    bits = nats / math.log(2)
    return {"score": -bits, "val_bits_per_char": bits, "train_loss": loss.item()}
