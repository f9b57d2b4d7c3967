"""No code outside the registry and a model's own module asks which model it has: it asks the registered kind."""
import ast

from conftest import ROOT
from utils.generators import GENERATORS

# The handout's networks (and the bonus's), by the file that defines each, and the kind each one is.
MODEL_CLASSES = {"MLPAutoencoder": "MLPAE", "Autoencoder": "AE", "VarAutoencoder": "VAE",
                 "LatentAutoencoder": "LatentAE", "Diffuser": "diffusion"}
REGISTRY = "utils/generators.py"


def own_files(kind):
    """The files allowed to name a kind: its module, and the file that defines its network class."""
    module = GENERATORS[kind].module
    files = {(module if isinstance(module, str) else module.__name__).replace(".", "/") + ".py"}
    for path in ROOT.glob("*.py"):
        defined = {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
        files |= {path.name for cls in defined if MODEL_CLASSES.get(cls) == kind}
    return files


def named_kind(node):
    """The kind a comparison operand names: a model's name as a string (or a tuple/list/set of them), a model's
    class, or a kind's own module (`trainer is diffusion`)."""
    if isinstance(node, ast.Constant) and node.value in GENERATORS:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [kind for element in node.elts for kind in named_kind(element)]
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    if name in MODEL_CLASSES:
        return [MODEL_CLASSES[name]]
    return [name] if name in GENERATORS and isinstance(node, ast.Name) else []


def branches_on_a_model(tree):
    """(line, kind) of every comparison with a named kind, and of every isinstance/issubclass on a model class."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                yield from ((node.lineno, kind) for kind in named_kind(operand))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
            yield from ((node.lineno, kind) for kind in named_kind(node.args[1]))


def offenders(files):
    found = []
    for path in files:
        relative = str(path.relative_to(ROOT))
        for line, kind in branches_on_a_model(ast.parse(path.read_text())):
            if relative != REGISTRY and relative not in own_files(kind):
                found.append(f"{relative}:{line} ({kind})")
    return found


def test_no_code_branches_on_a_models_name_or_class():
    files = [p for p in ROOT.rglob("*.py") if not {".venv", "tests"} & set(p.relative_to(ROOT).parts)]
    assert offenders(files) == []


def test_the_structure_test_finds_each_kind_of_branch():
    code = '''
if config["model"] == "VAE": pass
if name in ("AE", "VAE"): pass
if cls is LatentAutoencoder: pass
if trainer is diffusion: pass
if isinstance(model, models.Autoencoder): pass
if kind.reconstructs and kind.name != other: pass
'''
    assert sorted(kind for _, kind in branches_on_a_model(ast.parse(code))) == \
        ["AE", "AE", "LatentAE", "VAE", "VAE", "diffusion"]
