#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rpn.h"

#define STACK_MAX 64

const char *rpn_message(enum rpn_status status)
{
    switch (status) {
    case RPN_DIV_ZERO:
        return "division by zero";
    case RPN_UNDERFLOW:
        return "stack underflow";
    case RPN_TOO_MANY:
        return "too many operands";
    case RPN_BAD_TOKEN:
        return "bad token";
    default:
        return "";
    }
}

static int ends_token(char c)
{
    return c == '\0' || isspace((unsigned char)c);
}

static enum rpn_status apply(char op, long a, long b, long *out)
{
    switch (op) {
    case '+':
        *out = a + b;
        break;
    case '-':
        *out = a - b;
        break;
    case '*':
        *out = a * b;
        break;
    default:
        if (b == 0)
            return RPN_DIV_ZERO;
        *out = a / b;
    }
    return RPN_OK;
}

enum rpn_status rpn_eval(const char *line, long *result)
{
    long stack[STACK_MAX];
    int depth = 0;
    const char *p = line;

    while (*p != '\0') {
        char *end;
        long value;

        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        value = strtol(p, &end, 10);
        if (end != p && ends_token(*end)) {
            if (depth == STACK_MAX)
                return RPN_TOO_MANY;
            stack[depth++] = value;
            p = end;
            continue;
        }
        if (strchr("+-*/", *p) == NULL || !ends_token(p[1]))
            return RPN_BAD_TOKEN;
        if (depth < 2)
            return RPN_UNDERFLOW;
        depth -= 2;
        enum rpn_status status = apply(*p, stack[depth], stack[depth + 1], &stack[depth]);
        if (status != RPN_OK)
            return status;
        depth++;
        p++;
    }
    if (depth == 0)
        return RPN_EMPTY;
    if (depth > 1)
        return RPN_TOO_MANY;
    *result = stack[0];
    return RPN_OK;
}
