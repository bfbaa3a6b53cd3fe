"""Planning by imitating search: mazes, Sokoban, A* search dynamics as tokens, Dualformer dropping."""
