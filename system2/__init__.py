"""system2: teach transformers to think slow.

Planning by imitating search (Searchformer, Dualformer), reasoning by self-improvement, and the
architecture and data pieces (CoPE, reverse training, BTX), in one tested toolkit.
"""

__version__ = "0.1.0"
