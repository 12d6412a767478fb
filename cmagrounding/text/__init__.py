"""Text side: the word tokenizer (vocabulary, ``tokenizer.json``) and GloVe word vectors."""

from cmagrounding.text.glove import EmbeddingReport, build_embedding_matrix, read_glove
from cmagrounding.text.tokenizer import WordTokenizer

__all__ = ["WordTokenizer", "EmbeddingReport", "build_embedding_matrix", "read_glove"]
