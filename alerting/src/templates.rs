//! The French email templates (minijinja): each message has a plain-text and an HTML part.
//! Names ending in `.html` are HTML-escaped automatically, `.txt` ones are not. Values are
//! prepared in Rust (dates already in French, Europe/Paris), so templates only lay out text.

use minijinja::Environment;
use serde::Serialize;

use crate::AlertError;

const DIRECTOR_TXT: &str = r#"{% if kind == "closed" %}Madame la directrice, Monsieur le directeur,

L'ENT est de nouveau disponible depuis le {{ ended }}.
L'interruption commencée le {{ started }} a duré {{ lasted }}.

Vos élèves, leurs parents et vos enseignants peuvent de nouveau se connecter.
{% elif kind == "maintenance" %}Madame la directrice, Monsieur le directeur,

Une intervention de maintenance de l'ENT est programmée :
  début : {{ started }}
  fin prévue : {{ expected_end }}
  durée estimée : {{ duration }}

Pendant cette intervention, l'ENT ne sera pas accessible aux élèves, aux parents et aux enseignants de l'école {{ school }}.
{% else %}Madame la directrice, Monsieur le directeur,

{% if kind == "update" %}Mise à jour de notre message précédent : l'interruption de l'ENT se prolonge.
{% endif %}L'ENT est actuellement indisponible, depuis le {{ started }}.
  Durée estimée de l'interruption : {{ duration }}
  Heure prévue de rétablissement : {{ expected_end }}

Les élèves, les parents et les enseignants de l'école {{ school }} ne peuvent pas se connecter pour l'instant.
Nous vous informerons dès que le service sera rétabli.
{% endif %}{% if message %}
{{ message }}
{% endif %}
Le service informatique de la ville

-- 
Message envoyé à la direction de l'école {{ school }} ({{ uai }}).
"#;

const DIRECTOR_HTML: &str = r#"<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
<p>Madame la directrice, Monsieur le directeur,</p>
{% if kind == "closed" %}
<p><strong>L'ENT est de nouveau disponible</strong> depuis le {{ ended }}.</p>
<p>L'interruption commencée le {{ started }} a duré {{ lasted }}.
Vos élèves, leurs parents et vos enseignants peuvent de nouveau se connecter.</p>
{% elif kind == "maintenance" %}
<p>Une <strong>intervention de maintenance de l'ENT</strong> est programmée :</p>
<table>
<tr><th align="left">Début</th><td>{{ started }}</td></tr>
<tr><th align="left">Fin prévue</th><td>{{ expected_end }}</td></tr>
<tr><th align="left">Durée estimée</th><td>{{ duration }}</td></tr>
</table>
<p>Pendant cette intervention, l'ENT ne sera pas accessible aux élèves, aux parents et aux enseignants de l'école {{ school }}.</p>
{% else %}
{% if kind == "update" %}<p><em>Mise à jour de notre message précédent : l'interruption de l'ENT se prolonge.</em></p>{% endif %}
<p><strong>L'ENT est actuellement indisponible</strong>, depuis le {{ started }}.</p>
<table>
<tr><th align="left">Durée estimée de l'interruption</th><td>{{ duration }}</td></tr>
<tr><th align="left">Heure prévue de rétablissement</th><td>{{ expected_end }}</td></tr>
</table>
<p>Les élèves, les parents et les enseignants de l'école {{ school }} ne peuvent pas se connecter pour l'instant.
Nous vous informerons dès que le service sera rétabli.</p>
{% endif %}
{% if message %}<p>{{ message }}</p>{% endif %}
<p>Le service informatique de la ville</p>
<hr><p style="color: #666; font-size: small">Message envoyé à la direction de l'école {{ school }} ({{ uai }}).</p>
</body></html>
"#;

const APPROVAL_TXT: &str = r#"{% if escalated %}Le premier valideur n'a pas répondu depuis {{ waited }} : cette demande vous est transmise.

{% endif %}Un avis {% if kind == "maintenance" %}de maintenance programmée{% else %}d'interruption{% endif %} doit être envoyé aux {{ directors }} directeurs d'école.
Rien ne leur sera envoyé avant votre validation.

  Service : {{ service }}
  Début : {{ started }}
  Durée estimée : {{ duration }}
  Rétablissement prévu : {{ expected_end }}
{% if message %}  Message ajouté : {{ message }}
{% endif %}
Aperçu du message à la direction de l'école {{ sample_school }} :
------------------------------------------------------------
{{ preview }}
------------------------------------------------------------

Valider et envoyer (lien personnel, valable jusqu'au {{ link_expires }}) :
{{ approve_url }}

Pour corriger l'estimation ou le texte avant de valider : tableau de bord, page « Avis aux écoles »,
ou `vigie notice edit {{ id }} --estimate 2h --message "…"`.

-- 
Vigie, supervision de l'ENT — avis n° {{ id }}, version {{ revision }}
"#;

const APPROVAL_HTML: &str = r#"<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
{% if escalated %}<p><strong>Le premier valideur n'a pas répondu depuis {{ waited }}</strong> : cette demande vous est transmise.</p>{% endif %}
<p>Un avis {% if kind == "maintenance" %}de maintenance programmée{% else %}d'interruption{% endif %} doit être envoyé aux <strong>{{ directors }} directeurs d'école</strong>.
Rien ne leur sera envoyé avant votre validation.</p>
<table>
<tr><th align="left">Service</th><td>{{ service }}</td></tr>
<tr><th align="left">Début</th><td>{{ started }}</td></tr>
<tr><th align="left">Durée estimée</th><td>{{ duration }}</td></tr>
<tr><th align="left">Rétablissement prévu</th><td>{{ expected_end }}</td></tr>
{% if message %}<tr><th align="left">Message ajouté</th><td>{{ message }}</td></tr>{% endif %}
</table>
<p>Aperçu du message à la direction de l'école {{ sample_school }} :</p>
<pre style="border-left: 3px solid #999; padding-left: 1em">{{ preview }}</pre>
<p><a href="{{ approve_url }}" style="font-weight: bold">Valider et envoyer aux {{ directors }} directeurs</a>
(lien personnel, valable jusqu'au {{ link_expires }})</p>
<p>Pour corriger l'estimation ou le texte avant de valider : tableau de bord, page « Avis aux écoles ».</p>
<hr><p style="color: #666; font-size: small">Vigie, supervision de l'ENT — avis n° {{ id }}, version {{ revision }}</p>
</body></html>
"#;

const IT_TXT: &str = r#"{% if kind == "closed" %}Le service {{ service }} est rétabli depuis le {{ ended }}, après {{ lasted }} d'interruption (début : {{ started }}).
{% if directors_told %}Le message « service rétabli » part vers les {{ directors }} directeurs d'école.{% else %}Les directeurs d'école n'avaient pas été prévenus (avis non validé) : aucun message ne leur est envoyé.{% endif %}
{% else %}Le service {{ service }} est indisponible depuis le {{ started }}.

Un avis aux {{ directors }} directeurs d'école est préparé (durée estimée : {{ duration }}, rétablissement prévu : {{ expected_end }}).
Il attend la validation de : {{ approvers }}.
{% if in_maintenance %}
Cette interruption tombe dans une maintenance programmée (avis n° {{ maintenance_id }}) : aucun nouvel avis n'est préparé.
{% endif %}{% endif %}
-- 
Vigie, supervision de l'ENT — avis n° {{ id }}
"#;

/// An alert to on-call (firing, reminder, resolved): the text part's content, laid out.
pub(crate) const ALERT_HTML: &str = r#"<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 720px">
<h1 style="font-size: 1.2em; color: {{ colour }}">{{ headline }}</h1>
<h2 style="font-size: 1em">Quoi</h2>
<p><strong>{{ title }}</strong>{% if description %}<br>{{ description }}{% endif %}</p>
<h2 style="font-size: 1em">Où</h2>
<table>
<tr><th align="left">Regroupement</th><td><code>{{ key }}</code></td></tr>
{% if source_ip %}<tr><th align="left">Adresse IP source</th><td><code>{{ source_ip }}</code></td></tr>{% endif %}
{% if user %}<tr><th align="left">Compte</th><td>{{ user }}</td></tr>{% endif %}
</table>
<h2 style="font-size: 1em">Depuis quand</h2>
<table>
<tr><th align="left">Première détection</th><td>{{ first_seen }} (heure de Paris)</td></tr>
<tr><th align="left">Dernière détection</th><td>{{ last_seen }}</td></tr>
{% if resolved %}<tr><th align="left">Résolue</th><td>{{ resolved }}</td></tr>{% endif %}
<tr><th align="left">Nombre de détections</th><td>{{ count }}</td></tr>
</table>
<h2 style="font-size: 1em">Classement</h2>
<table>
<tr><th align="left">Gravité</th><td>{{ severity }}</td></tr>
<tr><th align="left">Classe d'incident (CCTP)</th><td>{{ cctp }}</td></tr>
{% if mitre %}<tr><th align="left">MITRE ATT&amp;CK</th><td>{{ mitre }}</td></tr>{% endif %}
</table>
<h2 style="font-size: 1em">Preuve (dernière détection)</h2>
<pre style="white-space: pre-wrap; background: #f6f6f6; padding: 8px">{{ evidence }}</pre>
{% if ack_url %}<p><a href="{{ ack_url }}" style="display: inline-block; background: #000091; color: #ffffff; padding: 8px 16px; text-decoration: none">Prendre en compte</a><br>
<small>Arrête les rappels et enregistre qui s'en occupe.</small></p>{% endif %}
<p style="color: #6b6b6b">Règle {{ rule }} — alerte n° {{ id }}<br>Vigie, supervision de l'ENT</p>
</body></html>
"#;

/// The template set.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("director.txt", DIRECTOR_TXT),
        ("director.html", DIRECTOR_HTML),
        ("approval.txt", APPROVAL_TXT),
        ("approval.html", APPROVAL_HTML),
        ("it.txt", IT_TXT),
    ] {
        // The templates are part of the binary and tested: a syntax error is a bug caught by
        // the tests, so it is reported at render time rather than here.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "invalid built-in email template");
        }
    }
    env
}

/// An environment with one template (the report's).
pub(crate) fn environment_with(name: &'static str, source: &'static str) -> Environment<'static> {
    let mut env = Environment::new();
    if let Err(e) = env.add_template(name, source) {
        tracing::error!(template = name, error = %e, "invalid built-in template");
    }
    env
}

/// Renders template `name` with `ctx`.
pub(crate) fn render<S: Serialize>(env: &Environment<'_>, name: &str, ctx: S) -> Result<String, AlertError> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| AlertError::Template { name: name.to_owned(), reason: format!("{e:#}") })
}
