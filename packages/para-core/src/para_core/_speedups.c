/*
 * para_core._speedups: the caller's per-task work, in C.
 *
 * A call of 100 000 trivial tasks spends most of its time in the caller:
 * the caller's own ``delayed(f)(x)`` generator, then the loop that reads it
 * into batches. Both run once per task, so both are here:
 *
 *     delayed(f)          -> Delayer: the wrapper of the last plain function
 *                            is kept, so a generator gets the same one back
 *     delayed(f)(*a, **k) -> DelayedFunction: builds (f, a, k)
 *     take_compact(...)   -> reads a run of f(x) calls into a list of x
 *
 * This module is optional. _delayed.py and _compact.py hold the same logic
 * in Python and use it when the module was not compiled, or when
 * PARA_CORE_PURE_PYTHON is set; the tests run both against the same cases.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

/* Markers returned by take_compact; _compact.py exports these objects. */
static PyObject *FULL_MARK = NULL;
static PyObject *END_MARK = NULL;

/* ----------------------------------------------------------- take_compact */

PyDoc_STRVAR(take_compact_doc,
"take_compact(it, f, single, size, out)\n--\n\n"
"Read up to ``size`` calls of ``f`` from ``it`` into ``out``.\n\n"
"See ``para_core._compact.take_compact``: same contract. A task that is\n"
"not an exact 3-tuple with an exact tuple of arguments and an empty dict\n"
"ends the run (it is returned, read but not added).");

static PyObject *
take_compact(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "take_compact() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *it = args[0], *f = args[1], *out = args[4];
    int single = PyObject_IsTrue(args[2]);
    if (single < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[3]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "take_compact(): size must be >= 0");
        return NULL;
    }
    if (!PyIter_Check(it)) {
        PyErr_SetString(PyExc_TypeError, "take_compact(): it must be an iterator");
        return NULL;
    }
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "take_compact(): out must be a list");
        return NULL;
    }
    for (Py_ssize_t n = 0; n < size; n++) {
        PyObject *item = PyIter_Next(it);
        if (item == NULL) {
            return PyErr_Occurred() ? NULL : Py_NewRef(END_MARK);
        }
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
            return item;
        }
        PyObject *func = PyTuple_GET_ITEM(item, 0);
        PyObject *a = PyTuple_GET_ITEM(item, 1);
        PyObject *kw = PyTuple_GET_ITEM(item, 2);
        if (!PyTuple_CheckExact(a) || !PyDict_CheckExact(kw) || PyDict_GET_SIZE(kw)) {
            return item;
        }
        if (func != f) {
            /* obj.method is a new object at each access: compare those. */
            if (!Py_IS_TYPE(func, &PyMethod_Type)) {
                return item;
            }
            int same = PyObject_RichCompareBool(func, f, Py_EQ);
            if (same <= 0) {
                if (same < 0) {
                    Py_DECREF(item);
                    return NULL;
                }
                return item;
            }
        }
        PyObject *value = a;
        if (single) {
            if (PyTuple_GET_SIZE(a) != 1) {
                return item;
            }
            value = PyTuple_GET_ITEM(a, 0);
        }
        int failed = PyList_Append(out, value);
        Py_DECREF(item);
        if (failed) {
            return NULL;
        }
    }
    return Py_NewRef(FULL_MARK);
}

/* -------------------------------------------------------- DelayedFunction */

static int
no_keywords(PyTypeObject *type, PyObject *kwargs)
{
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", type->tp_name);
        return 0;
    }
    return 1;
}

typedef struct {
    PyObject_HEAD
    PyObject *function;
    PyObject *dict;  /* __wrapped__, __name__, __doc__... (update_wrapper) */
    PyObject *weakrefs;  /* weakly referable, as the Python closure is */
    vectorcallfunc vectorcall;
} DelayedFunction;

static PyObject *
delayed_function_call(PyObject *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *call_args = PyTuple_New(nargs);
    if (call_args == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(call_args, i, Py_NewRef(args[i]));
    }
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL) {
        Py_DECREF(call_args);
        return NULL;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0) {
                Py_DECREF(call_args);
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    PyObject *task = PyTuple_New(3);
    if (task == NULL) {
        Py_DECREF(call_args);
        Py_DECREF(kwargs);
        return NULL;
    }
    PyObject *function = ((DelayedFunction *)self)->function;
    if (function == NULL) {
        Py_DECREF(call_args);
        Py_DECREF(kwargs);
        Py_DECREF(task);
        PyErr_SetString(PyExc_RuntimeError, "delayed function was cleared");
        return NULL;
    }
    PyTuple_SET_ITEM(task, 0, Py_NewRef(function));
    PyTuple_SET_ITEM(task, 1, call_args);
    PyTuple_SET_ITEM(task, 2, kwargs);
    return task;
}

static PyObject *
delayed_function_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *function;
    if (!no_keywords(type, kwargs) ||
        !PyArg_UnpackTuple(args, type->tp_name, 1, 1, &function)) {
        return NULL;
    }
    DelayedFunction *self = (DelayedFunction *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->function = Py_NewRef(function);
    self->dict = NULL;
    self->weakrefs = NULL;
    self->vectorcall = delayed_function_call;
    return (PyObject *)self;
}

static int
delayed_function_traverse(DelayedFunction *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->function);
    Py_VISIT(self->dict);
    return 0;
}

/* The garbage collector may clear an object that code run by another
 * object's finalizer still reaches (and calls): only the attributes are
 * dropped here, which breaks every cycle through the wrapper (update_wrapper
 * puts the function back in them as __wrapped__); ``function`` lives until
 * the deallocation. */
static int
delayed_function_clear(DelayedFunction *self)
{
    Py_CLEAR(self->dict);
    return 0;
}

static void
delayed_function_dealloc(DelayedFunction *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_CLEAR(self->dict);
    Py_CLEAR(self->function);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* As a class attribute it binds like the Python closure it replaces. */
static PyObject *
delayed_function_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
delayed_function_repr(DelayedFunction *self)
{
    return PyUnicode_FromFormat("<delayed %R>",
                                self->function ? self->function : Py_None);
}

/* (type, (function,), attributes): pickle restores the attributes. */
static PyObject *
delayed_function_reduce(DelayedFunction *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("O(O)O", (PyObject *)Py_TYPE(self),
                         self->function ? self->function : Py_None,
                         self->dict ? self->dict : Py_None);
}

static PyMethodDef delayed_function_methods[] = {
    {"__reduce__", (PyCFunction)delayed_function_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef delayed_function_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(DelayedFunction, vectorcall),
     READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(DelayedFunction, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(DelayedFunction, weakrefs), READONLY,
     NULL},
    {"function", T_OBJECT, offsetof(DelayedFunction, function), READONLY,
     "The function whose calls are captured."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef delayed_function_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(delayed_function_doc,
"DelayedFunction(function)\n--\n\n"
"What ``delayed(function)`` returns: a call gives the task\n"
"``(function, args, kwargs)``.");

static PyType_Slot delayed_function_slots[] = {
    {Py_tp_new, delayed_function_new},
    {Py_tp_dealloc, delayed_function_dealloc},
    {Py_tp_traverse, delayed_function_traverse},
    {Py_tp_clear, delayed_function_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, delayed_function_get},
    {Py_tp_repr, delayed_function_repr},
    {Py_tp_methods, delayed_function_methods},
    {Py_tp_members, delayed_function_members},
    {Py_tp_getset, delayed_function_getset},
    {Py_tp_doc, (void *)delayed_function_doc},
    {0, NULL},
};

static PyType_Spec delayed_function_spec = {
    .name = "para_core._speedups.DelayedFunction",
    .basicsize = sizeof(DelayedFunction),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
              | Py_TPFLAGS_IMMUTABLETYPE),
    .slots = delayed_function_slots,
};

/* ---------------------------------------------------------------- Delayer */

/* The ``delayed`` callable: make(function) builds a wrapper (in Python, with
 * functools.update_wrapper); the one of the last plain function is kept. */
typedef struct {
    PyObject_HEAD
    PyObject *make;
    PyObject *last_function;
    PyObject *last_wrapper;
    PyObject *dict;
    PyObject *weakrefs;
    vectorcallfunc vectorcall;
} Delayer;

/* Replace the kept pair. Releasing the old pair may run any Python code
 * (finalizers, the garbage collector, another thread), which may call this
 * Delayer again: both new references are stored before either old one is
 * released, so such code always sees a matching function and wrapper (as
 * the Python twin, which swaps one tuple). */
static void
delayer_keep(Delayer *self, PyObject *function, PyObject *wrapper)
{
    PyObject *old_function = self->last_function;
    PyObject *old_wrapper = self->last_wrapper;
    self->last_function = Py_XNewRef(function);
    self->last_wrapper = Py_XNewRef(wrapper);
    Py_XDECREF(old_function);
    Py_XDECREF(old_wrapper);
}

static PyObject *
delayer_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Delayer *self = (Delayer *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    /* The Python function's messages, and its keyword form. */
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError,
                     "delayed() takes 1 positional argument but %zd were given",
                     nargs + nkw);
        return NULL;
    }
    if (nkw == 1 &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "function")) {
        PyErr_Format(PyExc_TypeError,
                     "delayed() got an unexpected keyword argument '%U'",
                     PyTuple_GET_ITEM(kwnames, 0));
        return NULL;
    }
    if (nargs + nkw == 0) {
        PyErr_SetString(PyExc_TypeError,
                        "delayed() missing 1 required positional argument: 'function'");
        return NULL;
    }
    PyObject *function = args[0];
    if (function == self->last_function && self->last_wrapper != NULL) {
        return Py_NewRef(self->last_wrapper);
    }
    if (self->make == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "delayed() was cleared");
        return NULL;
    }
    /* make() runs Python code, which may call this Delayer again. */
    PyObject *make = Py_NewRef(self->make);
    PyObject *wrapper = PyObject_CallOneArg(make, function);
    Py_DECREF(make);
    if (wrapper == NULL) {
        return NULL;
    }
    /* Bound methods are new objects at each obj.method: never a hit. */
    if (Py_IS_TYPE(function, &PyFunction_Type) || Py_IS_TYPE(function, &PyCFunction_Type)) {
        delayer_keep(self, function, wrapper);
    }
    return wrapper;
}

static PyObject *
delayer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *make;
    if (!no_keywords(type, kwargs) ||
        !PyArg_UnpackTuple(args, type->tp_name, 1, 1, &make)) {
        return NULL;
    }
    Delayer *self = (Delayer *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->make = Py_NewRef(make);
    self->last_function = self->last_wrapper = self->dict = self->weakrefs = NULL;
    self->vectorcall = delayer_call;
    return (PyObject *)self;
}

static int
delayer_traverse(Delayer *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->make);
    Py_VISIT(self->last_function);
    Py_VISIT(self->last_wrapper);
    Py_VISIT(self->dict);
    return 0;
}

/* As for DelayedFunction: ``make`` stays until the deallocation, so a
 * Delayer cleared by the collector while still reached keeps working; the
 * cycles through it (make's globals, __wrapped__) are broken by the
 * clearing of the function and of the attribute dict. */
static int
delayer_clear(Delayer *self)
{
    delayer_keep(self, NULL, NULL);
    Py_CLEAR(self->dict);
    return 0;
}

static void
delayer_dealloc(Delayer *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    delayer_keep(self, NULL, NULL);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->make);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
delayer_forget(Delayer *self, PyObject *Py_UNUSED(ignored))
{
    delayer_keep(self, NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *
delayer_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<function delayed at %p>", self);
}

/* Pickled by reference, like a module-level function (its __qualname__). */
static PyObject *
delayer_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttrString(self, "__qualname__");
}

static PyMethodDef delayer_methods[] = {
    {"forget", (PyCFunction)delayer_forget, METH_NOARGS,
     "Drop the kept wrapper (and with it the reference to its function)."},
    {"__reduce__", (PyCFunction)delayer_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef delayer_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(Delayer, vectorcall), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(Delayer, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Delayer, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef delayer_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(delayer_doc,
"Delayer(make)\n--\n\n"
"A ``delayed`` function: ``make(function)`` builds the wrappers, and the\n"
"one of the last plain function is kept for the next call.");

static PyType_Slot delayer_slots[] = {
    {Py_tp_new, delayer_new},
    {Py_tp_dealloc, delayer_dealloc},
    {Py_tp_traverse, delayer_traverse},
    {Py_tp_clear, delayer_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_repr, delayer_repr},
    {Py_tp_methods, delayer_methods},
    {Py_tp_members, delayer_members},
    {Py_tp_getset, delayer_getset},
    {Py_tp_doc, (void *)delayer_doc},
    {0, NULL},
};

static PyType_Spec delayer_spec = {
    .name = "para_core._speedups.Delayer",
    .basicsize = sizeof(Delayer),
    .flags = (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
              | Py_TPFLAGS_IMMUTABLETYPE),
    .slots = delayer_slots,
};

/* ----------------------------------------------------------------- module */

static PyMethodDef module_methods[] = {
    {"take_compact", (PyCFunction)(void (*)(void))take_compact, METH_FASTCALL,
     take_compact_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "para_core._speedups",
    .m_doc = "The caller's per-task work of para_core, in C (optional).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
add_type(PyObject *module, PyType_Spec *spec)
{
    PyObject *type = PyType_FromSpec(spec);
    if (type == NULL) {
        return -1;
    }
    const char *name = strrchr(spec->name, '.') + 1;
    int failed = PyModule_AddObjectRef(module, name, type);
    Py_DECREF(type);
    return failed;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (FULL_MARK == NULL) {
        FULL_MARK = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
        END_MARK = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
        if (FULL_MARK == NULL || END_MARK == NULL) {
            goto error;
        }
    }
    if (PyModule_AddObjectRef(module, "FULL", FULL_MARK) < 0 ||
        PyModule_AddObjectRef(module, "END", END_MARK) < 0 ||
        add_type(module, &delayed_function_spec) < 0 ||
        add_type(module, &delayer_spec) < 0) {
        goto error;
    }
    return module;
error:
    Py_DECREF(module);
    return NULL;
}
