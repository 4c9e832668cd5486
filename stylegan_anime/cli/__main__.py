"""`python -m stylegan_anime.cli` (and `torchrun ... -m stylegan_anime.cli`): the `stylegan-anime` command."""
from . import main

main()
