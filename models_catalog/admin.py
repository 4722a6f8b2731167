"""Admin for models, aliases, task scores, prices (append-only), plans and channels.

Channel keys are write-only here: the form takes a new key in a password field that is
never re-rendered, and only the masked hint ("…ab12") is ever displayed.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import services
from .models import AiModel, Channel, ChannelModel, ModelAlias, Price, PricingPlan, TaskScore


class CatalogueChangesMixin:
    """Any admin write invalidates the cached catalogue."""

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.catalogue_changed()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        services.catalogue_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        services.catalogue_changed()


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0


class TaskScoreInline(admin.TabularInline):
    model = TaskScore
    extra = 0


class PriceInline(admin.TabularInline):
    """Existing prices are history: shown read-only. A change is a new row with a later start."""

    model = Price
    extra = 0
    ordering = ["-effective_from"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AiModel)
class AiModelAdmin(CatalogueChangesMixin, admin.ModelAdmin):
    list_display = ["model_id", "display_name", "vendor", "status", "input_modalities", "output_modalities"]
    list_filter = ["vendor", "status"]
    search_fields = ["model_id", "display_name", "aliases__alias"]
    inlines = [ModelAliasInline, TaskScoreInline, PriceInline]
    autocomplete_fields = ["replacement"]


@admin.register(TaskScore)
class TaskScoreAdmin(CatalogueChangesMixin, admin.ModelAdmin):
    list_display = ["model", "task", "score", "note"]
    list_filter = ["task"]
    search_fields = ["model__model_id"]


@admin.register(Price)
class PriceAdmin(CatalogueChangesMixin, admin.ModelAdmin):
    list_display = ["model", "effective_from", "input_per_mtok", "output_per_mtok", "batch_percent", "note"]
    list_filter = ["model__vendor"]
    search_fields = ["model__model_id"]
    date_hierarchy = "effective_from"

    def has_change_permission(self, request, obj=None):
        return obj is None  # list yes, edit history no

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PricingPlan)
class PricingPlanAdmin(CatalogueChangesMixin, admin.ModelAdmin):
    list_display = ["slug", "name", "multiplier_numerator", "multiplier_denominator", "description"]


class ChannelModelInline(admin.TabularInline):
    model = ChannelModel
    extra = 0
    autocomplete_fields = ["model"]


class ChannelAdminForm(forms.ModelForm):
    base_url = forms.URLField(max_length=300, required=False, assume_scheme="https")
    new_api_key = forms.CharField(
        label=_("New API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Write-only: stored encrypted and never shown again. Leave blank to keep the current key."
        ),
    )

    class Meta:
        model = Channel
        fields = [
            "name",
            "provider_type",
            "base_url",
            "priority",
            "weight",
            "enabled",
            "cost_multiplier_numerator",
            "cost_multiplier_denominator",
        ]


class ChannelHealthFilter(admin.SimpleListFilter):
    title = _("health")
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [("cooling", _("cooling down")), ("failing", _("failing")), ("healthy", _("healthy"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "cooling":
            return queryset.filter(cooldown_until__gt=now)
        if self.value() == "failing":
            return queryset.filter(consecutive_failures__gt=0)
        if self.value() == "healthy":
            return queryset.filter(consecutive_failures=0).exclude(cooldown_until__gt=now)
        return queryset


@admin.register(Channel)
class ChannelAdmin(CatalogueChangesMixin, admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = [
        "name",
        "provider_type",
        "base_url",
        "api_key_hint",
        "priority",
        "weight",
        "enabled",
        "source",
        "health",
        "consecutive_failures",
        "cooldown_until",
        "last_error_at",
        "last_error_short",
    ]
    list_filter = ["provider_type", "enabled", "source", ChannelHealthFilter]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "api_key_hint",
        "source",
        "cooldown_until",
        "consecutive_failures",
        "last_error_at",
        "last_error",
    ]
    inlines = [ChannelModelInline]
    actions = ["rotate_keys"]

    @admin.display(description=_("Health"))
    def health(self, obj):
        """What the relay thinks of the channel: cooling down, failing, or healthy."""
        if obj.cooldown_until and obj.cooldown_until > timezone.now():
            return _("cooling down")
        if obj.consecutive_failures:
            return _("failing")
        return _("healthy")

    @admin.display(description=_("Last error"), ordering="last_error_at")
    def last_error_short(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        new_key = form.cleaned_data.get("new_api_key")
        if new_key:
            services.channel_set_api_key(channel_id=obj.pk, api_key=new_key)
            obj.refresh_from_db(fields=["api_key_ciphertext", "api_key_hint"])

    @admin.action(description=_("Re-encrypt all channel keys with the newest encryption key"))
    def rotate_keys(self, request, queryset):
        count = services.channel_keys_rotate()
        self.message_user(request, _("Re-encrypted %(n)d channel keys.") % {"n": count}, messages.SUCCESS)
