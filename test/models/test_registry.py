"""The model registry: one table of body and hand models (hmr_ros.models.registry)."""

from __future__ import annotations

import pytest

from hmr_ros.models import registry
from hmr_ros.models.hand_expert import HAND_EXPERT_VARIANTS
from hmr_ros.models.registry import ModelRegistryError
from hmr_ros.models.whole_body import WHOLE_BODY_VARIANTS


def test_roles_and_built_in_families() -> None:
    assert set(registry.models_for_role('body')) >= {'smplerx', 'fastmetro'}
    assert set(registry.models_for_role('hand')) >= {'hamer'}
    # Body models come first (the CLI lists them in this order).
    roles = [entry.role for entry in registry.all_models().values()]
    assert roles == sorted(roles)  # 'body' < 'hand'


def test_variant_tables_are_the_model_modules_own() -> None:
    assert registry.model_entry('smplerx').variant_names() == list(WHOLE_BODY_VARIANTS)
    assert registry.model_entry('hamer').variant_names() == list(HAND_EXPERT_VARIANTS)


@pytest.mark.parametrize(
    ('variant', 'family'),
    [('smplerx_h32', 'smplerx'), ('hamer', 'hamer'), ('fastmetro_s_r50', 'fastmetro')],
)
def test_variant_names_find_their_family(variant: str, family: str) -> None:
    assert registry.entry_for_variant(variant).name == family


def test_role_restricts_the_search() -> None:
    with pytest.raises(ModelRegistryError, match="unknown hand model variant 'smplerx_h32'"):
        registry.entry_for_variant('smplerx_h32', role='hand')


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ModelRegistryError, match='smplerx_h32') as error:
        registry.entry_for_variant('smplerx_h99')
    assert 'hamer' in str(error.value)
    with pytest.raises(ModelRegistryError, match='known models: .*fastmetro'):
        registry.model_entry('metro')


def test_adapters_only_with_the_models_they_are_defined_for() -> None:
    smplerx, hamer = registry.model_entry('smplerx'), registry.model_entry('hamer')
    fastmetro = registry.model_entry('fastmetro')
    assert registry.adapters_note(smplerx, hamer) == ''
    note = registry.adapters_note(fastmetro, hamer)
    assert 'FastMETRO' in note and 'HaMeR' not in note.split('with')[-1]


def test_a_second_entry_under_a_taken_name_is_refused() -> None:
    import dataclasses

    taken = registry.model_entry('hamer')
    with pytest.raises(ModelRegistryError, match='already registered'):
        registry.register_model(dataclasses.replace(taken, title='another'))


def test_entries_reject_unknown_roles_and_interfaces() -> None:
    import dataclasses

    taken = registry.model_entry('hamer')
    with pytest.raises(ModelRegistryError, match='role'):
        dataclasses.replace(taken, role='face')  # type: ignore[arg-type]
    with pytest.raises(ModelRegistryError, match='interface'):
        dataclasses.replace(taken, interface='mystery')


def test_layout_predicates_never_raise_on_odd_files() -> None:
    odd_files: tuple[object, ...] = (None, 3, [1, 2], {'state_dict': 5}, {'network': []}, {})
    for odd in odd_files:
        assert registry.detect_model(odd) is None
