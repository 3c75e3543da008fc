"""Teaching tools: the views of convolution that lectures draw on the board.

Each submodule adds its functions to this namespace.
"""
__all__ = []
