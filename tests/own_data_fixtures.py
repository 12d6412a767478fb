"""A small own-data folder (train/val/test.jsonl + features/ of the synthetic task) and a network
size that trains on it in seconds.

Shared by tests/test_training_head.py and tests/test_training_stages.py (imported by module name:
pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import pytest

from cmagrounding.training.synthetic import SyntheticConfig, make_synthetic

SMALL = dict(video_dim=16, vocab_size=32, word_dim=16, num_clips=16, max_words=10, hidden=32, lstm_hidden=16,
             lstm_layers=1, spe_hidden=16, head_hidden=32, num_phrases=1, num_heads=2, encoder_layers=1,
             decoder_layers=1, dropout=0.1, input_dropout=0.1, freeze_embeddings=False)
# 10-20 rows per video: some longer than SMALL's N = 16, so both joined and continuous windows occur
OWN_DATA = SyntheticConfig(train_videos=40, val_videos=8, test_videos=8, feature_dim=16, min_clips=10, max_clips=20)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """The folder, written once per test module."""
    root = tmp_path_factory.mktemp("own")
    make_synthetic(OWN_DATA).save(root)
    return root
