"""iGPT's recipes, registered in the radford.recipes entry-point group."""
