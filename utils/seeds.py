"""Seeds derived from several integers (a run's seed and a sample's index, an epoch, a rank), by a written-out rule.

The rule is the one CPython 3.8+ applies to hash() of a tuple of ints (an xxHash-style mix), bit for bit: the
figures and numbers in the docs were drawn with it. Written here, it is a contract of this project rather than an
implementation detail of the interpreter: another Python, or a change to its hashing, cannot change which image
sample i is.
"""
MASK = 2 ** 64 - 1
PRIME_1, PRIME_2, PRIME_5 = 11400714785074694791, 14029467366897019727, 2870177450012600261
INT_MODULUS = 2 ** 61 - 1   # an int's own mix: itself modulo this Mersenne prime, keeping its sign


def int_mix(n):
    value = abs(n) % INT_MODULUS * (-1 if n < 0 else 1)
    return -2 if value == -1 else value   # -1 is reserved as an error value: it maps to -2 (as -2 does)


def stable_seed(*numbers):
    """A 63-bit seed for torch.Generator().manual_seed from these integers; differs when any of them does."""
    acc = PRIME_5
    for n in numbers:
        acc = (acc + (int_mix(n) & MASK) * PRIME_2) & MASK
        acc = ((acc << 31) | (acc >> 33)) & MASK        # rotate left by 31 bits
        acc = (acc * PRIME_1) & MASK
    acc = (acc + (len(numbers) ^ PRIME_5 ^ 3527539)) & MASK
    signed = acc - 2 ** 64 if acc >= 2 ** 63 else acc
    return (1546275796 if signed == -1 else signed) % 2 ** 63
