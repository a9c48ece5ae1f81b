"""RFC 9162 Merkle hashes and proofs: known answers and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrail.evidence.merkle import (
    EMPTY_ROOT,
    InclusionChecker,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex
# The RFC 6962 test vectors (also used by certificate-transparency-go and Trillian).
LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
VECTOR_HASHES = [leaf_hash(h(x)) for x in LEAVES]


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert root_hash([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert root_hash([]) == EMPTY_ROOT


def test_small_trees_by_hand() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert a == sha(b"\x00a")
    assert node_hash(a, b) == sha(b"\x01" + a + b)
    assert root_hash([a]) == a
    assert root_hash([a, b]) == sha(b"\x01" + a + b)
    # Three leaves split at k = 2: ((a b) c)
    assert root_hash([a, b, c]) == sha(b"\x01" + sha(b"\x01" + a + b) + c)
    assert inclusion_proof([a, b, c], 2) == [node_hash(a, b)]
    assert inclusion_proof([a, b, c], 0) == [b, c]


def test_rfc6962_vector_roots() -> None:
    for n in range(1, 9):
        assert root_hash(VECTOR_HASHES[:n]).hex() == ROOTS[n - 1]


def test_rfc6962_vector_proofs() -> None:
    tree = MerkleTree(VECTOR_HASHES)
    assert [p.hex() for p in tree.inclusion_proof(5)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert tree.inclusion_proof(2, 3) == [h(ROOTS[1])]
    assert [p.hex() for p in tree.consistency_proof(6)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [p.hex() for p in tree.consistency_proof(2, 5)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]
    assert verify_consistency(6, 8, h(ROOTS[5]), h(ROOTS[7]), tree.consistency_proof(6))
    assert not verify_consistency(6, 8, h(ROOTS[4]), h(ROOTS[7]), tree.consistency_proof(6))
    assert consistency_proof(VECTOR_HASHES, 8) == []


def test_edge_cases() -> None:
    a = leaf_hash(b"a")
    assert verify_inclusion(a, 0, 1, [], a)
    assert not verify_inclusion(a, 1, 1, [], a)
    assert not verify_inclusion(a, 0, 0, [], a)
    assert verify_consistency(0, 5, EMPTY_ROOT, h(ROOTS[4]), [])
    assert not verify_consistency(0, 5, a, h(ROOTS[4]), [])
    assert verify_consistency(3, 3, h(ROOTS[2]), h(ROOTS[2]), [])
    assert not verify_consistency(3, 3, h(ROOTS[2]), h(ROOTS[2]), [a])
    assert not verify_consistency(4, 3, h(ROOTS[3]), h(ROOTS[2]), [])
    with pytest.raises(ValueError):
        MerkleTree([a]).inclusion_proof(1)
    with pytest.raises(ValueError):
        MerkleTree().append(b"short")


def test_incremental_tree_matches_from_scratch_at_every_size() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(70)]
    tree = MerkleTree()
    for n, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert tree.root() == _naive_root(leaves[:n])
        assert tree.root(n // 2) == _naive_root(leaves[: n // 2])


def _naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    b = bytearray(out[i])
    b[bit // 8] ^= 1 << (bit % 8)
    out[i] = bytes(b)
    return out


sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_every_inclusion_proof_verifies_and_mutations_fail(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree(leaves)
    root = tree.root()
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index)
    assert verify_inclusion(leaves[index], index, size, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        assert not verify_inclusion(
            leaves[index], index, size, _flip(proof, i, data.draw(st.integers(0, 255))), root
        )
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)
        assert not verify_inclusion(leaves[index], index, size, [*proof, proof[0]], root)
    other = data.draw(st.integers(0, size - 1).filter(lambda j: j != index)) if size > 1 else None
    if other is not None:
        assert not verify_inclusion(leaves[index], other, size, proof, root)
        assert not verify_inclusion(leaves[other], index, size, proof, root)
    # The size is authenticated by the signed checkpoint, not by the proof: a wrong size
    # fails whenever it changes the proof's shape (its length).
    wrong_size = data.draw(st.integers(index + 1, 400).filter(lambda s: s != size))
    if _path_len(index, wrong_size) != len(proof):
        assert not verify_inclusion(leaves[index], index, wrong_size, proof, root)
    assert not verify_inclusion(leaves[index], index, size, proof, sha(root))


@settings(max_examples=150, deadline=None)
@given(new=sizes, data=st.data())
def test_every_consistency_proof_verifies_and_mutations_fail(new: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(new)]
    tree = MerkleTree(leaves)
    old = data.draw(st.integers(1, new))
    old_root, new_root = tree.root(old), tree.root()
    proof = tree.consistency_proof(old)
    assert proof == consistency_proof(leaves, old)
    assert verify_consistency(old, new, old_root, new_root, proof)
    assert not verify_consistency(old, new, sha(old_root), new_root, proof)
    assert not verify_consistency(old, new, old_root, sha(new_root), proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        assert not verify_consistency(old, new, old_root, new_root, _flip(proof, i, bit))
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(old, new, old_root, new_root, [*proof, proof[0]])
    if old < new:  # wrong sizes fail when they change the proof's shape (see above)
        wrong_old = data.draw(st.integers(1, new - 1))
        if _consistency_len(wrong_old, new) != len(proof):
            assert not verify_consistency(wrong_old, new, old_root, new_root, proof)
        if _consistency_len(old, new + 1) != len(proof):
            assert not verify_consistency(old, new + 1, old_root, new_root, proof)


def _path_len(index: int, size: int) -> int:
    return len(MerkleTree([bytes(32)] * size).inclusion_proof(index))


def _consistency_len(old: int, new: int) -> int:
    return len(MerkleTree([bytes(32)] * new).consistency_proof(old))


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_the_shared_path_checker_agrees_with_one_proof_at_a_time(
    size: int, data: st.DataObject
) -> None:
    """Many leaves checked against one root share their verified nodes; each answer is
    still the answer of RFC 9162's algorithm for that leaf and proof alone."""
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree(leaves)
    checker = InclusionChecker(size, tree.root())
    for _ in range(data.draw(st.integers(1, 12))):
        index = data.draw(st.integers(0, size - 1))
        proof = tree.inclusion_proof(index)
        leaf = leaves[index]
        if proof and data.draw(st.booleans()):  # a forged proof, or a forged leaf
            proof = _flip(proof, data.draw(st.integers(0, len(proof) - 1)), 1)
        elif data.draw(st.booleans()):
            leaf = sha(leaf)
        expected = verify_inclusion(leaf, index, size, proof, tree.root())
        assert checker.verify(leaf, index, proof) == expected
