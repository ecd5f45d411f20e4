/* registry.c - the list of generative methods, and the public entry points
 * that find a method by its name or a checkpoint's "method" before handing
 * over to the generic trainer and model handle (src/train/).
 *
 * Adding a method: its file in src/methods/ defines `const fm__method
 * fm__method_<name>` whose id is its position in METHODS below, and X(<name>)
 * at the end of METHODS lists it. The first four have fm_method constants in
 * the public header; a later one is found by its name (fm_method_from_name)
 * and needs none. Nothing else names a method; tests/test_methods.c trains, resumes,
 * loads and samples every method listed here.
 */
#include "train/method.h"

#include <string.h>

/* The methods, in id order: X(name) stands for fm__method_<name>. */
#define METHODS(X) X(fm) X(ddpm) X(vae) X(gan) X(cnf) X(nf) X(score) X(rfm) X(dfm) X(meanflow)

#define DECLARE(name) extern const fm__method fm__method_##name;
METHODS(DECLARE)
#undef DECLARE
#define ENTRY(name) &fm__method_##name,
static const fm__method *const methods[] = {METHODS(ENTRY)};
#undef ENTRY
#define NMETHODS ((int)(sizeof methods / sizeof methods[0]))

/* The table of method id, NULL when unknown. */
static const fm__method *by_id(int id)
{
    for (int i = 0; i < NMETHODS; i++)
        if ((int)methods[i]->id == id) return methods[i];
    return NULL;
}

static const fm__method *by_name(const char *name)
{
    for (int i = 0; i < NMETHODS; i++)
        if (name && !strcmp(name, methods[i]->name)) return methods[i];
    return NULL;
}

int fm_method_count(void) { return NMETHODS; }

const char *fm_method_name(fm_method m)
{
    const fm__method *t = by_id(m);
    return t ? t->name : "?";
}

int fm_method_from_name(const char *name)
{
    const fm__method *t = by_name(name);
    return t ? (int)t->id : -1;
}

const char *fm_method_summary(fm_method m)
{
    const fm__method *t = by_id(m);
    return t ? t->summary : NULL;
}

/* Method t's setting called name, or NULL. */
static const fm__setting *setting_of(const fm__method *t, const char *name)
{
    for (const fm__setting *s = t ? t->settings : NULL; s && s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

int fm_method_takes_option(fm_method m, const char *option, int *known)
{
    int mine = 0, any = 0;
    for (int i = 0; i < NMETHODS; i++) {
        int has = setting_of(methods[i], option) != NULL;
        for (const char *const *o = methods[i]->options; o && *o && !has; o++) has = !strcmp(*o, option);
        any |= has;
        if (has && (int)methods[i]->id == (int)m) mine = 1;
    }
    if (known) *known = any;
    return mine;
}

const char *fm_method_setting(fm_method m, int i, const char **metavar, const char **help, char *def, size_t cap)
{
    const fm__method *t = by_id(m);
    for (int k = 0; t && t->settings && t->settings[k].name; k++)
        if (k == i) {
            const fm__setting *s = &t->settings[k];
            if (metavar) *metavar = s->metavar;
            if (help) *help = s->help;
            if (def && cap) {
                fm_train_config c = fm_train_config_for(m);
                def[0] = '\0';
                if (s->get) s->get(&c, def, cap);
            }
            return s->name;
        }
    return NULL;
}

fm_status fm_train_config_set(fm_train_config *c, const char *name, const char *value)
{
    const fm__method *t = by_id(c->method);
    const fm__setting *s = name ? setting_of(t, name) : NULL;
    if (!s) {
        for (int i = 0; name && i < NMETHODS; i++)
            if (setting_of(methods[i], name))
                return fm__fail(FM_ERR_ARG, "'%s' is a setting of %s, not of %s", name, methods[i]->name,
                                t ? t->name : "this method");
        return fm__fail(FM_ERR_ARG, "%s has no setting '%s'", t ? t->name : "the method", name ? name : "(null)");
    }
    if (!value) return fm__fail(FM_ERR_ARG, "%s: setting '%s' needs a value", t->name, name);
    return s->set(c, value);
}

const char *fm_method_sampler(fm_method m, int i)
{
    const fm__method *t = by_id(m);
    for (int k = 0; t && t->samplers && t->samplers[k]; k++)
        if (k == i) return t->samplers[k];
    return NULL;
}

fm_train_config fm_train_config_for(fm_method m)
{
    fm_train_config c = fm_train_config_default();
    const fm__method *t = by_id(m);
    c.method = m;
    if (t && t->default_data) c.flow.data = t->default_data;
    if (t && t->defaults) t->defaults(&c, fm_spec_image_shape(c.flow.data, NULL, NULL, NULL));
    return c;
}

fm_train_config fm_train_config_for_data(fm_method m, const char *spec)
{
    fm_train_config c = fm_train_config_default();
    const fm__method *t = by_id(m);
    c.method = m;
    c.flow.data = spec;
    if (t && t->defaults) t->defaults(&c, fm_spec_image_shape(spec, NULL, NULL, NULL));
    return c;
}

fm_trainer *fm_trainer_new(const fm_train_config *cfg)
{
    const fm__method *t = cfg ? by_id(cfg->method) : NULL;
    if (cfg && !t) {
        fm__fail(FM_ERR_ARG, "unknown method %d", (int)cfg->method);
        return NULL;
    }
    return fm__trainer_new(t, cfg, NULL);
}

/* The method a checkpoint was written by ("method" in its metadata, fm when
 * absent), after the format check; NULL with a message otherwise. */
static const fm__method *method_of(const fm_st *st)
{
    if (fm__meta_check_format(st)) return NULL;
    const char *net = fm_st_meta(st, "model");
    if (net && !strcmp(net, "classifier")) {
        fm__fail(FM_ERR_FORMAT, "the checkpoint holds an image classifier, not a generative model (eval takes it as "
                                "--classifier)");
        return NULL;
    }
    const char *mk = fm_st_meta(st, "method");
    const fm__method *t = mk ? by_name(mk) : &fm__method_fm;
    if (!t) {
        char list[256] = "";
        for (int i = 0; i < NMETHODS; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", methods[i]->name);
        fm__fail(FM_ERR_FORMAT, "checkpoint metadata 'method' = '%s' is not one of %s", mk, list);
    }
    return t;
}

fm_model *fm_model_load(const fm_st *st, int use_ema)
{
    const fm__method *t = method_of(st);
    if (!t) return NULL;
    void *obj = t->load(st, use_ema);
    return obj ? fm__model_wrap(t, obj) : NULL;
}

fm_trainer *fm_trainer_resume(const char *path, int64_t iters)
{
    fm_st *st = fm_st_load(path);
    if (!st) return fm__trainer_agreed(NULL);
    const fm__method *t = method_of(st);
    fm_trainer *tr = t ? fm__trainer_resume(t, st, path, iters) : NULL;
    fm_st_free(st);
    return fm__trainer_agreed(tr);
}
